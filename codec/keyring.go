// Package codec is Cairn's payload codec: every payload Temporal stores for Cairn (a run's
// input and result, signals, queries, activity inputs and results, summaries, failure
// messages) is encrypted with AES-256-GCM under a data key, one per contact (envelope
// encryption), itself stored in PostgreSQL wrapped by a key ring given by configuration.
// Erasing a contact destroys its data key, so every payload of that contact, wherever
// Temporal keeps it, decodes to the Erased placeholder. The package also serves Temporal's
// remote codec protocol, so Temporal UI and the temporal CLI show decoded payloads.
package codec

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// Key is one key of the key ring.
type Key struct {
	ID   string
	aead cipher.AEAD
}

// KeyRing holds the keys that wrap data keys. The first is current: new data keys are wrapped
// by it, and a data key found wrapped by another is rewrapped by it when next used. The others
// only unwrap, until `cairn codec rewrap` has moved every data key to the current one.
type KeyRing struct {
	keys []Key
	byID map[string]cipher.AEAD
}

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseKeyRing reads a key ring written as "id:base64key" entries separated by commas or new
// lines, the current key first; blank lines and lines starting with # are skipped. Each key
// is 32 bytes in standard or URL base64.
func ParseKeyRing(s string) (*KeyRing, error) {
	r := &KeyRing{byID: map[string]cipher.AEAD{}}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			id, b64, ok := strings.Cut(entry, ":")
			if !ok {
				return nil, fmt.Errorf("key ring entry %q is not id:base64key", redactEntry(entry))
			}
			id = strings.TrimSpace(id)
			if !keyIDPattern.MatchString(id) {
				return nil, fmt.Errorf("key ring id %q: use 1 to 64 letters, digits, '_', '.' or '-'", id)
			}
			raw, err := decodeKey(strings.TrimSpace(b64))
			if err != nil {
				return nil, fmt.Errorf("key ring key %s: %w", id, err)
			}
			if _, dup := r.byID[id]; dup {
				return nil, fmt.Errorf("key ring id %s appears twice", id)
			}
			aead, err := newAEAD(raw)
			if err != nil {
				return nil, fmt.Errorf("key ring key %s: %w", id, err)
			}
			r.keys = append(r.keys, Key{ID: id, aead: aead})
			r.byID[id] = aead
		}
	}
	if len(r.keys) == 0 {
		return nil, fmt.Errorf("the key ring has no key")
	}
	return r, nil
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("is %d bytes; keys are %d bytes (openssl rand -base64 32)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("is not base64")
}

// redactEntry keeps a key out of an error message.
func redactEntry(e string) string {
	if len(e) > 8 {
		return e[:4] + "…"
	}
	return "…"
}

// KeyRingFromEnv reads the key ring from CAIRN_CODEC_KEYS, or else from the file named by
// CAIRN_CODEC_KEY_FILE; ok is false when neither is set.
func KeyRingFromEnv() (ring *KeyRing, ok bool, err error) {
	if v := os.Getenv("CAIRN_CODEC_KEYS"); v != "" {
		r, err := ParseKeyRing(v)
		if err != nil {
			return nil, true, fmt.Errorf("CAIRN_CODEC_KEYS: %w", err)
		}
		return r, true, nil
	}
	if path := os.Getenv("CAIRN_CODEC_KEY_FILE"); path != "" {
		r, err := ReadKeyRing(path)
		return r, true, err
	}
	return nil, false, nil
}

// ReadKeyRing reads a key ring file (see ParseKeyRing).
func ReadKeyRing(path string) (*KeyRing, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key ring: %w", err)
	}
	r, err := ParseKeyRing(string(b))
	if err != nil {
		return nil, fmt.Errorf("key ring %s: %w", path, err)
	}
	return r, nil
}

// NewKeyEntry returns a fresh key ring entry "id:base64key".
func NewKeyEntry(id string) string {
	return id + ":" + base64.StdEncoding.EncodeToString(randomBytes(KeySize))
}

// EnsureKeyFile creates a key ring file holding one new key named id unless the file exists.
func EnsureKeyFile(path, id string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("# Cairn's codec key ring: id:base64key, the current key first. Keep it secret; losing it loses every payload.\n")
	b.WriteString(NewKeyEntry(id) + "\n")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write key ring: %w", err)
	}
	return nil
}

// Current is the key new data keys are wrapped by.
func (r *KeyRing) Current() string { return r.keys[0].ID }

// IDs lists the ring's key ids, the current one first.
func (r *KeyRing) IDs() []string {
	ids := make([]string, len(r.keys))
	for i, k := range r.keys {
		ids[i] = k.ID
	}
	return ids
}

// wrap encrypts a data key under the current key; the data key's id is bound to it.
func (r *KeyRing) wrap(dataKeyID string, dk []byte) (by string, wrapped []byte) {
	k := r.keys[0]
	nonce := randomBytes(k.aead.NonceSize())
	return k.ID, k.aead.Seal(nonce, nonce, dk, []byte("cairn-data-key:"+dataKeyID))
}

// unwrap decrypts a data key wrapped by the key named by.
func (r *KeyRing) unwrap(dataKeyID, by string, wrapped []byte) ([]byte, error) {
	aead, ok := r.byID[by]
	if !ok {
		return nil, fmt.Errorf("%w: data key %s is wrapped by key-ring key %q, which is not in the key ring (%s)",
			ErrUnknownKey, dataKeyID, by, strings.Join(r.IDs(), ", "))
	}
	n := aead.NonceSize()
	if len(wrapped) < n {
		return nil, fmt.Errorf("%w: data key %s is too short", ErrTampered, dataKeyID)
	}
	dk, err := aead.Open(nil, wrapped[:n], wrapped[n:], []byte("cairn-data-key:"+dataKeyID))
	if err != nil {
		return nil, fmt.Errorf("%w: data key %s does not open with key-ring key %q", ErrTampered, dataKeyID, by)
	}
	return dk, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error()) // never on a supported platform
	}
	return b
}
