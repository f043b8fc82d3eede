package codec

import (
	"container/list"
	"context"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairnhq/cairn/crm"
)

// dataKey is an unwrapped data key in memory (or the fact that it was destroyed).
type dataKey struct {
	id        string
	contactID int64 // 0: the shared key
	by        string
	aead      cipher.AEAD
	erased    bool
	expires   time.Time
	elem      *list.Element
}

// keyCache keeps the most recently used data keys, so the codec reads PostgreSQL once per
// contact and TTL, not once per payload.
type keyCache struct {
	mu        sync.Mutex
	byID      map[string]*dataKey
	byContact map[int64]*dataKey
	lru       *list.List // front: most recently used
	max       int
	ttl       time.Duration
}

func newKeyCache(max int, ttl time.Duration) *keyCache {
	return &keyCache{byID: map[string]*dataKey{}, byContact: map[int64]*dataKey{}, lru: list.New(), max: max, ttl: ttl}
}

func (kc *keyCache) get(k *dataKey) *dataKey {
	if k == nil {
		return nil
	}
	if time.Now().After(k.expires) {
		kc.remove(k)
		return nil
	}
	kc.lru.MoveToFront(k.elem)
	return k
}

func (kc *keyCache) byIDGet(id string) *dataKey {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return kc.get(kc.byID[id])
}

func (kc *keyCache) byContactGet(contactID int64) *dataKey {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return kc.get(kc.byContact[contactID])
}

func (kc *keyCache) put(k *dataKey) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if old := kc.byID[k.id]; old != nil {
		kc.remove(old)
	}
	if old := kc.byContact[k.contactID]; old != nil {
		kc.remove(old)
	}
	k.expires = time.Now().Add(kc.ttl)
	k.elem = kc.lru.PushFront(k)
	kc.byID[k.id] = k
	kc.byContact[k.contactID] = k
	for kc.lru.Len() > kc.max {
		kc.remove(kc.lru.Back().Value.(*dataKey))
	}
}

func (kc *keyCache) remove(k *dataKey) {
	kc.lru.Remove(k.elem)
	if kc.byID[k.id] == k {
		delete(kc.byID, k.id)
	}
	if kc.byContact[k.contactID] == k {
		delete(kc.byContact, k.contactID)
	}
}

func (kc *keyCache) forgetContact(contactID int64) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if k := kc.byContact[contactID]; k != nil {
		kc.remove(k)
	}
}

// contactKey is the data key new payloads of the contact (0: of no contact) are encrypted
// under, made on first use.
func (c *Codec) contactKey(contactID int64) (*dataKey, error) {
	if k := c.cache.byContactGet(contactID); k != nil {
		if k.erased {
			return nil, fmt.Errorf("%w: contact %d has no data key any more", ErrErased, contactID)
		}
		return k, nil
	}
	ctx, cancel := dbContext()
	defer cancel()
	stored, err := crm.ContactDataKey(ctx, c.db, contactID)
	if errors.Is(err, crm.ErrNotFound) {
		id := "dk_" + hex.EncodeToString(randomBytes(12))
		by, wrapped := c.ring.wrap(id, randomBytes(KeySize))
		stored, err = crm.AddDataKey(ctx, c.db, crm.DataKey{ID: id, ContactID: contactID, Shared: contactID == 0, WrappedBy: by, Wrapped: wrapped})
	}
	if err != nil {
		return nil, fmt.Errorf("cairn codec: data key of %s: %w", scope(contactID), err)
	}
	k, err := c.open(ctx, stored)
	if err != nil {
		return nil, err
	}
	c.cache.put(k)
	if k.erased {
		return nil, fmt.Errorf("%w: contact %d has no data key any more", ErrErased, contactID)
	}
	return k, nil
}

// dataKey is the data key a payload names.
func (c *Codec) dataKey(id string) (*dataKey, error) {
	if k := c.cache.byIDGet(id); k != nil {
		return k, nil
	}
	ctx, cancel := dbContext()
	defer cancel()
	stored, err := crm.DataKeyByID(ctx, c.db, id)
	if errors.Is(err, crm.ErrNotFound) {
		return nil, fmt.Errorf("%w: data key %q is not in this Cairn's database", ErrUnknownKey, id)
	}
	if err != nil {
		return nil, fmt.Errorf("cairn codec: data key %s: %w", id, err)
	}
	k, err := c.open(ctx, stored)
	if err != nil {
		return nil, err
	}
	c.cache.put(k)
	return k, nil
}

// open unwraps a stored data key, and rewraps it under the current key-ring key when another
// wrapped it: the keys in use move to the newest key by themselves.
func (c *Codec) open(ctx context.Context, s *crm.DataKey) (*dataKey, error) {
	k := &dataKey{id: s.ID, contactID: s.ContactID, by: s.WrappedBy}
	if s.DestroyedAt != nil {
		k.erased = true
		return k, nil
	}
	raw, err := c.ring.unwrap(s.ID, s.WrappedBy, s.Wrapped)
	if err != nil {
		return nil, err
	}
	if k.aead, err = newAEAD(raw); err != nil {
		return nil, err
	}
	if cur := c.ring.Current(); s.WrappedBy != cur {
		by, wrapped := c.ring.wrap(s.ID, raw)
		if err := crm.RewrapDataKey(ctx, c.db, s.ID, s.WrappedBy, by, wrapped); err != nil {
			c.logger.Warn("could not rewrap a data key under the current key-ring key", "data_key", s.ID, "error", err)
		} else {
			k.by = by
		}
	}
	return k, nil
}

// Rewrap moves every data key still wrapped by an older key-ring key under the current one,
// after which the older keys can leave the ring. It returns how many it rewrapped.
func (c *Codec) Rewrap(ctx context.Context) (int, error) {
	n := 0
	for {
		keys, err := crm.DataKeysWrappedBy(ctx, c.db, c.ring.Current(), 500)
		if err != nil {
			return n, err
		}
		if len(keys) == 0 {
			return n, nil
		}
		for _, s := range keys {
			raw, err := c.ring.unwrap(s.ID, s.WrappedBy, s.Wrapped)
			if err != nil {
				return n, err
			}
			by, wrapped := c.ring.wrap(s.ID, raw)
			if err := crm.RewrapDataKey(ctx, c.db, s.ID, s.WrappedBy, by, wrapped); err != nil {
				return n, err
			}
			n++
		}
	}
}

// Destroy destroys a contact's data key (in db, which may be the erasure's transaction)
// and forgets it here. Other processes forget it within the cache TTL.
func (c *Codec) Destroy(ctx context.Context, db crm.DB, contactID int64, at time.Time) error {
	if contactID <= 0 {
		return fmt.Errorf("cairn codec: contact %d cannot be erased", contactID)
	}
	err := crm.DestroyContactDataKey(ctx, db, contactID, "dk_"+hex.EncodeToString(randomBytes(12)), at)
	c.cache.forgetContact(contactID)
	return err
}

// Forget drops a contact's data key from memory (after a transaction destroying it commits).
func (c *Codec) Forget(contactID int64) { c.cache.forgetContact(contactID) }

func scope(contactID int64) string {
	if contactID == 0 {
		return "the shared key"
	}
	return fmt.Sprintf("contact %d", contactID)
}
