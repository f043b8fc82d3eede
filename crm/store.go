// Package crm is Cairn's CRM store on PostgreSQL: contacts, the event log, tags, the action
// ledger, the email outbox and journey versions. SQL lives here and nowhere else.
package crm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairnhq/cairn/journey"
)

// ErrNotFound is returned when the row asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrNoEmail means a send was asked for a contact without an email address.
var ErrNoEmail = errors.New("contact has no email address")

// DB is what both a pool and a transaction offer. Every store function takes one, so a caller
// composes several inside one transaction by passing the transaction, and a function that
// needs a transaction of its own begins one on whatever it was given (a savepoint inside a
// transaction).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// WithTx runs fn in a transaction that is committed when fn returns nil and rolled back
// otherwise (including on panic).
func WithTx(ctx context.Context, db DB, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, db, fn)
}

// Contact is a person Cairn knows.
type Contact struct {
	ID         int64  `json:"id"`
	ExternalID string `json:"external_id"`
	Email      string `json:"email,omitempty"`
	// The profile columns: filled from traits (which win) and from what sending systems
	// observed (Segment's context), so segments on them need not read traits.
	Phone      string         `json:"phone,omitempty"`
	FirstName  string         `json:"first_name,omitempty"`
	LastName   string         `json:"last_name,omitempty"`
	Timezone   string         `json:"timezone,omitempty"`
	Country    string         `json:"country,omitempty"`
	Region     string         `json:"region,omitempty"`
	City       string         `json:"city,omitempty"`
	DeviceType string         `json:"device_type,omitempty"`
	Traits     map[string]any `json:"traits"`
	Tags       []string       `json:"tags"`
	// Aliases are the other ids the contact was known by (anonymous ids before an alias).
	Aliases   []string  `json:"aliases"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ContactByExternalID returns the contact with its tags.
// Any id the contact was known by finds it (an anonymous id before an alias, as "anon:<id>").
func ContactByExternalID(ctx context.Context, db DB, externalID string) (*Contact, error) {
	var id int64
	err := db.QueryRow(ctx, `SELECT id FROM contacts WHERE external_id = $1
		UNION ALL SELECT contact_id FROM contact_aliases WHERE alias = $1 LIMIT 1`, externalID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find contact: %w", err)
	}
	return ContactByID(ctx, db, id)
}

// Contact returns the contact with its tags.
func ContactByID(ctx context.Context, db DB, id int64) (*Contact, error) {
	c := &Contact{}
	var email *string
	err := db.QueryRow(ctx, `
		SELECT id, external_id, email, traits, created_at, updated_at,
		       COALESCE((SELECT array_agg(tag ORDER BY tag) FROM contact_tags WHERE contact_id = c.id), '{}'),
		       COALESCE(phone, ''), COALESCE(first_name, ''), COALESCE(last_name, ''), COALESCE(timezone, ''),
		       COALESCE(country, ''), COALESCE(region, ''), COALESCE(city, ''), COALESCE(device_type, ''),
		       COALESCE((SELECT array_agg(alias ORDER BY alias) FROM contact_aliases WHERE contact_id = c.id), '{}')
		FROM contacts c WHERE id = $1`, id).
		Scan(&c.ID, &c.ExternalID, &email, &c.Traits, &c.CreatedAt, &c.UpdatedAt, &c.Tags,
			&c.Phone, &c.FirstName, &c.LastName, &c.Timezone, &c.Country, &c.Region, &c.City, &c.DeviceType, &c.Aliases)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read contact %d: %w", id, err)
	}
	if email != nil {
		c.Email = *email
	}
	return c, nil
}

// ActionResult is what a ledgered action did the first time it ran.
type ActionResult struct {
	// Replayed is true when this call found the action already done and changed nothing.
	Replayed bool           `json:"-"`
	Detail   map[string]any `json:"detail,omitempty"`
}

// ledger runs effect once per idempotency key, in the transaction that records the key.
// A second call with the same key returns the first call's result and runs nothing.
func ledger(ctx context.Context, db DB, key, action string, contactID int64, effect func(tx pgx.Tx) (map[string]any, error)) (ActionResult, error) {
	var res ActionResult
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM contacts WHERE id = $1)`, contactID).Scan(&exists); err != nil {
			return fmt.Errorf("check contact: %w", err)
		}
		if !exists {
			return fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO action_ledger (idempotency_key, action, contact_id) VALUES ($1, $2, $3)
			ON CONFLICT (idempotency_key) DO NOTHING`, key, action, contactID)
		if err != nil {
			return fmt.Errorf("ledger %s: %w", action, err)
		}
		if tag.RowsAffected() == 0 {
			res.Replayed = true
			return tx.QueryRow(ctx, `SELECT result FROM action_ledger WHERE idempotency_key = $1`, key).Scan(&res.Detail)
		}
		detail, err := effect(tx)
		if err != nil {
			return err
		}
		// Return what a retry will read back from the ledger, so both look the same.
		return tx.QueryRow(ctx, `UPDATE action_ledger SET result = $2 WHERE idempotency_key = $1 RETURNING result`, key, detail).Scan(&res.Detail)
	})
	return res, err
}

// AddTag tags the contact once per idempotency key and records a tag_added event when the
// tag is new.
func AddTag(ctx context.Context, db DB, act Action, tag string) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "add_tag", contactID, func(tx pgx.Tx) (map[string]any, error) {
		ct, err := tx.Exec(ctx, `INSERT INTO contact_tags (contact_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING`, contactID, tag)
		if err != nil {
			return nil, fmt.Errorf("add tag: %w", err)
		}
		added := ct.RowsAffected() == 1
		if added {
			if _, err := tx.Exec(ctx, `INSERT INTO tag_changes (contact_id, tag, change) VALUES ($1, $2, 'added')`, contactID, tag); err != nil {
				return nil, fmt.Errorf("record tag change: %w", err)
			}
			if err := appendOwn(ctx, tx, contactID, "tag_added", map[string]any{"tag": tag}, key, act.At); err != nil {
				return nil, err
			}
		}
		return map[string]any{"tag": tag, "added": added}, nil
	})
}

// JourneyVersion is one immutable version of a journey.
type JourneyVersion struct {
	JourneyID  string          `json:"id"`
	Version    int             `json:"version"`
	Paused     bool            `json:"paused"`
	ArchivedAt *time.Time      `json:"archived_at,omitempty"`
	Definition journey.Journey `json:"definition"`
	CreatedAt  time.Time       `json:"created_at"`
}

// ApplyJourney stores j as a new version unless the newest version is identical;
// created says which happened.
func ApplyJourney(ctx context.Context, db DB, j *journey.Journey, document string) (v JourneyVersion, created bool, err error) {
	def, err := json.Marshal(j)
	if err != nil {
		return v, false, fmt.Errorf("encode journey: %w", err)
	}
	sum := sha256.Sum256(def)
	digest := hex.EncodeToString(sum[:])
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO journeys (id) VALUES ($1) ON CONFLICT DO NOTHING`, j.ID); err != nil {
			return fmt.Errorf("insert journey: %w", err)
		}
		// Lock the journey row so two concurrent applies cannot both take version n+1.
		var archived bool
		if err := tx.QueryRow(ctx, `SELECT archived_at IS NOT NULL FROM journeys WHERE id = $1 FOR UPDATE`, j.ID).Scan(&archived); err != nil {
			return fmt.Errorf("lock journey: %w", err)
		}
		var latest int
		var latestDigest string
		err := tx.QueryRow(ctx, `SELECT version, digest FROM journey_versions WHERE journey_id = $1 ORDER BY version DESC LIMIT 1`, j.ID).Scan(&latest, &latestDigest)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read latest version: %w", err)
		}
		if latestDigest == digest {
			v.Version = latest
			return nil
		}
		if archived {
			return fmt.Errorf("journey %q: %w (unarchive it first)", j.ID, ErrArchived)
		}
		v.Version = latest + 1
		created = true
		_, err = tx.Exec(ctx, `INSERT INTO journey_versions (journey_id, version, definition, digest, document, interests, trigger_events)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			j.ID, v.Version, def, digest, document, j.Interests(), j.TriggerEvents())
		if err != nil {
			return fmt.Errorf("insert journey version: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE journeys SET updated_at = now() WHERE id = $1`, j.ID)
		return err
	})
	if err != nil {
		return v, false, err
	}
	got, err := JourneyByID(ctx, db, j.ID, v.Version)
	if err != nil {
		return v, false, err
	}
	return *got, created, nil
}

const journeyColumns = `v.journey_id, v.version, j.paused, j.archived_at, v.definition, v.created_at`

func scanJourney(row pgx.Row) (*JourneyVersion, error) {
	v := &JourneyVersion{}
	var def []byte
	if err := row.Scan(&v.JourneyID, &v.Version, &v.Paused, &v.ArchivedAt, &def, &v.CreatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(def, &v.Definition); err != nil {
		return nil, fmt.Errorf("decode stored journey %s v%d: %w", v.JourneyID, v.Version, err)
	}
	return v, nil
}

// Journey returns one version of a journey; version 0 means the newest.
func JourneyByID(ctx context.Context, db DB, id string, version int) (*JourneyVersion, error) {
	v, err := scanJourney(db.QueryRow(ctx, `SELECT `+journeyColumns+`
		FROM journey_versions v JOIN journeys j ON j.id = v.journey_id
		WHERE v.journey_id = $1 AND ($2 = 0 OR v.version = $2)
		ORDER BY v.version DESC LIMIT 1`, id, version))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("journey %q: %w", id, ErrNotFound)
	}
	return v, err
}

// TriggeredBy returns the newest version of every unpaused journey with a trigger listening
// for the event name; the caller applies the triggers' filters.
func TriggeredBy(ctx context.Context, db DB, eventName string) ([]JourneyVersion, error) {
	rows, err := db.Query(ctx, `SELECT `+journeyColumns+`
		FROM journeys j
		JOIN LATERAL (SELECT * FROM journey_versions WHERE journey_id = j.id ORDER BY version DESC LIMIT 1) v ON true
		WHERE NOT j.paused AND j.archived_at IS NULL AND $1 = ANY (v.trigger_events)
		ORDER BY j.id`, eventName)
	if err != nil {
		return nil, fmt.Errorf("match triggers: %w", err)
	}
	defer rows.Close()
	var out []JourneyVersion
	for rows.Next() {
		v, err := scanJourney(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, rows.Err()
}

// SetPaused pauses (no new entries) or resumes a journey; runs in flight go on either way.
func SetPaused(ctx context.Context, db DB, id string, paused bool) error {
	ct, err := db.Exec(ctx, `UPDATE journeys SET paused = $2, updated_at = now() WHERE id = $1`, id, paused)
	if err != nil {
		return fmt.Errorf("pause journey: %w", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("journey %q: %w", id, ErrNotFound)
	}
	return nil
}

// Action identifies one ledgered effect: the idempotency key the workflow derived for the
// step visit, the contact it acts on, and when it happens by the caller's clock.
type Action struct {
	Key       string
	ContactID int64
	At        time.Time
}

// PoolConfig is the pool configuration Cairn connects with: a context that ends (an HTTP
// client gone, a time limit) cancels the statement on the server too, instead of only
// dropping the connection while the backend goes on counting.
func PoolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	return cfg, nil
}

// Connect opens a pool with PoolConfig and at least minConns connections allowed.
func Connect(ctx context.Context, url string, minConns int32) (*pgxpool.Pool, error) {
	cfg, err := PoolConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.MaxConns < minConns {
		cfg.MaxConns = minConns
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}
