package crm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// DataKey is a payload codec data key as stored: wrapped by the key-ring key WrappedBy. A
// destroyed key (its contact was erased) has no Wrapped bytes and a DestroyedAt time.
type DataKey struct {
	ID          string
	ContactID   int64 // 0 for the shared key
	Shared      bool
	WrappedBy   string
	Wrapped     []byte
	CreatedAt   time.Time
	DestroyedAt *time.Time
}

const dataKeyColumns = `id, COALESCE(contact_id, 0), shared, COALESCE(wrapped_by, ''), wrapped, created_at, destroyed_at`

func scanDataKey(row pgx.Row) (*DataKey, error) {
	var k DataKey
	err := row.Scan(&k.ID, &k.ContactID, &k.Shared, &k.WrappedBy, &k.Wrapped, &k.CreatedAt, &k.DestroyedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read data key: %w", err)
	}
	return &k, nil
}

// DataKeyByID returns a data key by its id (ErrNotFound when there is none).
func DataKeyByID(ctx context.Context, db DB, id string) (*DataKey, error) {
	return scanDataKey(db.QueryRow(ctx, `SELECT `+dataKeyColumns+` FROM data_keys WHERE id = $1`, id))
}

// ContactDataKey returns the data key of a contact, or of no contact (the shared one) when
// contactID is 0; ErrNotFound when it has none yet.
func ContactDataKey(ctx context.Context, db DB, contactID int64) (*DataKey, error) {
	if contactID == 0 {
		return scanDataKey(db.QueryRow(ctx, `SELECT `+dataKeyColumns+` FROM data_keys WHERE shared`))
	}
	return scanDataKey(db.QueryRow(ctx, `SELECT `+dataKeyColumns+` FROM data_keys WHERE contact_id = $1`, contactID))
}

// AddDataKey stores k as the data key of its contact (or the shared one) unless that one
// already has a key, and returns the key that holds: k, or the one stored before (by another
// process, or destroyed by an erasure).
func AddDataKey(ctx context.Context, db DB, k DataKey) (*DataKey, error) {
	var contact *int64
	if !k.Shared {
		contact = &k.ContactID
	}
	added, err := scanDataKey(db.QueryRow(ctx, `INSERT INTO data_keys (id, contact_id, shared, wrapped_by, wrapped) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING RETURNING `+dataKeyColumns, k.ID, contact, k.Shared, k.WrappedBy, k.Wrapped))
	if errors.Is(err, ErrNotFound) {
		return ContactDataKey(ctx, db, k.ContactID) // another process added one first
	}
	if err != nil {
		return nil, fmt.Errorf("add data key: %w", err)
	}
	return added, nil
}

// RewrapDataKey replaces a data key's wrapping, if it is still wrapped by oldBy (another
// process may have rewrapped it first, or an erasure destroyed it).
func RewrapDataKey(ctx context.Context, db DB, id, oldBy, newBy string, wrapped []byte) error {
	if _, err := db.Exec(ctx, `UPDATE data_keys SET wrapped_by = $3, wrapped = $4 WHERE id = $1 AND wrapped_by = $2`,
		id, oldBy, newBy, wrapped); err != nil {
		return fmt.Errorf("rewrap data key %s: %w", id, err)
	}
	return nil
}

// DataKeysWrappedBy lists the live data keys wrapped by any key-ring key but keep, at most
// limit of them, for rewrapping under the current key.
func DataKeysWrappedBy(ctx context.Context, db DB, keep string, limit int) ([]DataKey, error) {
	rows, err := db.Query(ctx, `SELECT `+dataKeyColumns+` FROM data_keys WHERE wrapped_by <> $1 ORDER BY id LIMIT $2`, keep, limit)
	if err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	defer rows.Close()
	var out []DataKey
	for rows.Next() {
		k, err := scanDataKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, rows.Err()
}

// DestroyContactDataKey destroys a contact's data key, leaving a tombstone so that none is
// ever made for it again. A contact without a key yet gets the tombstone alone.
func DestroyContactDataKey(ctx context.Context, db DB, contactID int64, tombstoneID string, at time.Time) error {
	if _, err := db.Exec(ctx, `INSERT INTO data_keys (id, contact_id, shared, wrapped_by, wrapped, destroyed_at)
		VALUES ($1, $2, false, NULL, NULL, $3)
		ON CONFLICT (contact_id) DO UPDATE SET wrapped_by = NULL, wrapped = NULL, destroyed_at = COALESCE(data_keys.destroyed_at, $3)`,
		tombstoneID, contactID, at); err != nil {
		return fmt.Errorf("destroy data key of contact %d: %w", contactID, err)
	}
	return nil
}
