package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/object"
)

// ErrInvalidRecord marks a custom object record its type's schema refuses.
var ErrInvalidRecord = errors.New("invalid record")

// RecordError is a record its type's schema refuses, with every problem's path: fields.<name>
// for a record written through the API, properties.<name> for one a source event writes.
type RecordError struct {
	Type, Record string
	// Index is the event's place in a batch of events recorded together (RecordEvents).
	Index    int
	Problems []journey.Problem
}

func (e *RecordError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return fmt.Sprintf("%s %s %q: %s", ErrInvalidRecord, e.Type, e.Record, strings.Join(parts, "; "))
}

// Unwrap makes every RecordError an ErrInvalidRecord.
func (e *RecordError) Unwrap() error { return ErrInvalidRecord }

// PutObjectType saves an object type (checked by object.Decode) and its sources; the records
// it has already must pass its schema (a *journey.ValidationError lists those that do not,
// at records["<id>"]). created says it is new.
func PutObjectType(ctx context.Context, db DB, t *object.Type, document string) (created bool, err error) {
	schema, err := object.Compile(t.Schema)
	if err != nil {
		return false, err
	}
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO object_types (id, name, schema, document) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET name = $2, schema = $3, document = $4, updated_at = now() RETURNING (xmax = 0)`,
			t.ID, t.Name, t.Schema, document).Scan(&created); err != nil {
			return fmt.Errorf("save object type %s: %w", t.ID, err)
		}
		if !created {
			// The type's row is locked: no record is written meanwhile.
			rows, err := tx.Query(ctx, `SELECT id, fields FROM object_records WHERE type = $1 ORDER BY id`, t.ID)
			if err != nil {
				return fmt.Errorf("read records: %w", err)
			}
			var probs []journey.Problem
			for rows.Next() {
				var id string
				var fields map[string]any
				if err := rows.Scan(&id, &fields); err != nil {
					rows.Close()
					return fmt.Errorf("read records: %w", err)
				}
				if len(probs) < journey.MaxProblems {
					probs = append(probs, schema.Validate(fields, fmt.Sprintf("records[%q]", id))...)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("read records: %w", err)
			}
			if len(probs) > 0 {
				return &journey.ValidationError{Problems: probs[:min(len(probs), journey.MaxProblems)]}
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM object_sources WHERE type = $1`, t.ID); err != nil {
			return fmt.Errorf("replace sources: %w", err)
		}
		for _, s := range t.Sources {
			if _, err := tx.Exec(ctx, `INSERT INTO object_sources (event, type, id_property) VALUES ($1, $2, $3)`, s.Event, t.ID, s.ID); err != nil {
				return fmt.Errorf("save source %s: %w", s.Event, err)
			}
		}
		return nil
	})
	return created, err
}

// ObjectType is a stored type with how many records it has.
type ObjectType struct {
	object.Type
	Records   int64     `json:"records"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ObjectTypeByID reads a type.
func ObjectTypeByID(ctx context.Context, db DB, id string) (ObjectType, error) {
	t := ObjectType{Type: object.Type{ID: id}}
	err := db.QueryRow(ctx, `SELECT name, schema, created_at, updated_at,
			COALESCE((SELECT jsonb_agg(jsonb_build_object('event', event, 'id', id_property) ORDER BY event) FROM object_sources WHERE type = t.id), '[]'),
			(SELECT count(*) FROM object_records WHERE type = t.id)
		FROM object_types t WHERE id = $1`, id).Scan(&t.Name, &t.Schema, &t.CreatedAt, &t.UpdatedAt, &t.Sources, &t.Records)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("object type %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("read object type: %w", err)
	}
	return t, nil
}

// Record is a custom object record.
type Record struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	ExternalID string         `json:"userId"`
	Fields     map[string]any `json:"fields"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// RecordByID reads a record.
func RecordByID(ctx context.Context, db DB, typ, id string) (Record, error) {
	r := Record{Type: typ, ID: id}
	err := db.QueryRow(ctx, `SELECT c.external_id, r.fields, r.created_at, r.updated_at FROM object_records r JOIN contacts c ON c.id = r.contact_id
		WHERE r.type = $1 AND r.id = $2`, typ, id).Scan(&r.ExternalID, &r.Fields, &r.CreatedAt, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("%s record %q: %w", typ, id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read record: %w", err)
	}
	return r, nil
}

// typeSchema reads and compiles a type's schema, locking the type's row against a change of
// schema while a record is written.
func typeSchema(ctx context.Context, db DB, typ string) (*object.Schema, error) {
	var raw []byte
	err := db.QueryRow(ctx, `SELECT schema FROM object_types WHERE id = $1 FOR SHARE`, typ).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("object type %q: %w", typ, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read object type: %w", err)
	}
	return object.Compile(raw)
}

// PutRecord writes a record through the API: its fields replace the record's, for the contact
// known by externalID (made when new). changed says something changed: then object_created or
// object_changed is recorded.
func PutRecord(ctx context.Context, db DB, typ, id, externalID string, fields map[string]any, at time.Time) (created, changed bool, err error) {
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		schema, err := typeSchema(ctx, tx, typ)
		if err != nil {
			return err
		}
		if probs := schema.Validate(fields, "fields"); len(probs) > 0 {
			return &RecordError{Type: typ, Record: id, Problems: probs}
		}
		contactID, err := ensureContact(ctx, tx, externalID)
		if err != nil {
			return err
		}
		created, changed, err = writeRecord(ctx, tx, typ, id, contactID, fields, false, SourceAPI, "", at)
		return err
	})
	return created, changed, err
}

// DeleteRecord deletes a record and records object_deleted.
func DeleteRecord(ctx context.Context, db DB, typ, id string, at time.Time) error {
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		var contactID int64
		var fields map[string]any
		err := tx.QueryRow(ctx, `DELETE FROM object_records WHERE type = $1 AND id = $2 RETURNING contact_id, fields`, typ, id).Scan(&contactID, &fields)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s record %q: %w", typ, id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete record: %w", err)
		}
		_, _, err = appendEvent(ctx, tx, NewEvent{ContactID: contactID, Name: journey.EventObjectDeleted,
			Properties: objectEventProps(typ, id, fields, nil), Source: SourceAPI, OccurredAt: at})
		return err
	})
}

// objectEventProps are an object event's properties: the record's fields, and object, record
// and changed (names no field may take).
func objectEventProps(typ, id string, fields map[string]any, changed []string) map[string]any {
	props := make(map[string]any, len(fields)+3)
	for k, v := range fields {
		props[k] = v
	}
	props["object"], props["record"] = typ, id
	if changed != nil {
		props["changed"] = changed
	}
	return props
}

// writeRecord writes a record's fields (merged into the stored ones with merge) for the
// contact, and records what happened; the caller has validated the fields it writes.
func writeRecord(ctx context.Context, tx DB, typ, id string, contactID int64, fields map[string]any, merge bool, source, key string, at time.Time) (created, changed bool, err error) {
	var old map[string]any
	var owner int64
	err = tx.QueryRow(ctx, `SELECT contact_id, fields FROM object_records WHERE type = $1 AND id = $2 FOR UPDATE`, typ, id).Scan(&owner, &old)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		created = true
	case err != nil:
		return false, false, fmt.Errorf("read record: %w", err)
	}
	next := fields
	if merge && !created {
		next = make(map[string]any, len(old)+len(fields))
		for k, v := range old {
			next[k] = v
		}
		for k, v := range fields {
			next[k] = v
		}
	}
	var diff []string
	for k, v := range next {
		if ov, had := old[k]; !had || !jsonEqual(ov, v) {
			diff = append(diff, k)
		}
	}
	for k := range old {
		if _, kept := next[k]; !kept {
			diff = append(diff, k)
		}
	}
	sort.Strings(diff)
	if !created && len(diff) == 0 && owner == contactID {
		return false, false, nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO object_records (type, id, contact_id, fields, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (type, id) DO UPDATE SET contact_id = $3, fields = $4, updated_at = $5`, typ, id, contactID, next, at); err != nil {
		return false, false, fmt.Errorf("write record: %w", err)
	}
	name := journey.EventObjectChanged
	if created {
		name = journey.EventObjectCreated
	}
	if diff == nil {
		diff = []string{}
	}
	_, _, err = appendEvent(ctx, tx, NewEvent{ContactID: contactID, Name: name, Properties: objectEventProps(typ, id, next, diff),
		Source: source, DedupeKey: key, OccurredAt: at})
	return created, true, err
}

// recordObjects writes the records a source event carries, in the transaction that records
// it: the record its id property names, the event's properties that the type's schema names
// merged into its fields. A record the schema would refuse refuses the event (RecordError,
// with paths under properties).
func recordObjects(ctx context.Context, tx DB, eventID, contactID int64, name string, props map[string]any, at time.Time) error {
	if journey.Reserved(name) {
		return nil // Cairn's own facts are no source
	}
	rows, err := tx.Query(ctx, `SELECT type, id_property FROM object_sources WHERE event = $1 ORDER BY type`, name)
	if err != nil {
		return fmt.Errorf("object sources: %w", err)
	}
	type source struct{ Type, IDProperty string }
	sources, err := pgx.CollectRows(rows, pgx.RowToStructByPos[source])
	if err != nil || len(sources) == 0 {
		return err
	}
	for _, s := range sources {
		raw, ok := props[s.IDProperty]
		id := ""
		switch v := raw.(type) {
		case string:
			id = strings.TrimSpace(v)
		case float64, int, int64, json.Number:
			id = fmt.Sprint(v)
		}
		if !ok || object.RecordIDProblem(id) != "" {
			return &RecordError{Type: s.Type, Record: id, Problems: []journey.Problem{{Path: "properties." + s.IDProperty,
				Message: fmt.Sprintf("names the %s record this event writes (%s): a text of 1 to 255 bytes or a number", s.Type, name)}}}
		}
		schema, err := typeSchema(ctx, tx, s.Type)
		if err != nil {
			return err
		}
		fields := map[string]any{}
		for _, f := range schema.Fields() {
			if v, ok := props[f]; ok {
				fields[f] = v
			}
		}
		// The record as it will be, merged, must pass the schema.
		var old map[string]any
		if err := tx.QueryRow(ctx, `SELECT fields FROM object_records WHERE type = $1 AND id = $2 FOR UPDATE`, s.Type, id).Scan(&old); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read record: %w", err)
		}
		merged := map[string]any{}
		for k, v := range old {
			merged[k] = v
		}
		for k, v := range fields {
			merged[k] = v
		}
		if probs := schema.Validate(merged, "properties"); len(probs) > 0 {
			return &RecordError{Type: s.Type, Record: id, Problems: probs}
		}
		if _, _, err := writeRecord(ctx, tx, s.Type, id, contactID, fields, true, SourceCairn,
			fmt.Sprintf("object:%d:%s", eventID, s.Type), at); err != nil {
			return err
		}
	}
	return nil
}

// templateObjects reads the contact's custom object records by type, latest first.
func templateObjects(ctx context.Context, db DB, contactID int64) (map[string][]email.Record, error) {
	rows, err := db.Query(ctx, `SELECT type, id, fields, created_at, updated_at FROM object_records WHERE contact_id = $1
		ORDER BY type, updated_at DESC, id`, contactID)
	if err != nil {
		return nil, fmt.Errorf("read records for template: %w", err)
	}
	defer rows.Close()
	out := map[string][]email.Record{}
	for rows.Next() {
		var typ string
		var r email.Record
		if err := rows.Scan(&typ, &r.ID, &r.Fields, &r.CreatedAt, &r.UpdatedAt); err != nil {
			return nil, fmt.Errorf("read records for template: %w", err)
		}
		out[typ] = append(out[typ], r)
	}
	return out, rows.Err()
}

// CheckObjectTypes reports object tests naming a type that is not defined (PUT
// /v1/objects/{type} first), each at its path's object key.
func CheckObjectTypes(ctx context.Context, db DB, refs []journey.ObjectRef) ([]journey.Problem, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, `SELECT id FROM object_types`)
	if err != nil {
		return nil, fmt.Errorf("list object types: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list object types: %w", err)
	}
	known := map[string]bool{}
	for _, id := range ids {
		known[id] = true
	}
	var probs []journey.Problem
	for _, r := range refs {
		if !known[r.Test.Type] && len(probs) < journey.MaxProblems {
			probs = append(probs, journey.Problem{Path: r.Path + ".object", Message: fmt.Sprintf("no object type %q (PUT /v1/objects/%s first)", r.Test.Type, r.Test.Type)})
		}
	}
	return probs, nil
}
