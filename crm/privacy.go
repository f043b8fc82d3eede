package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// contactRows names every table holding rows about one contact, in the order an erasure
// deletes them (rows that others reference go last), with how the rows are found ($1 is the
// contact's id) and the name an export gives them. A table added with rows about contacts
// belongs here: TestEveryContactTableIsErased fails until it is.
var contactRows = []struct{ table, where, export string }{
	{"order_lines", "order_ref IN (SELECT id FROM orders WHERE contact_id = $1)", "order_lines"},
	{"cart_lines", "cart_ref IN (SELECT id FROM carts WHERE contact_id = $1)", "cart_lines"},
	{"orders", "contact_id = $1", "orders"},
	{"deal_stage_changes", "deal_id IN (SELECT id FROM deals WHERE contact_id = $1)", "deal_stage_changes"},
	{"deals", "contact_id = $1", "deals"},
	{"email_messages", "contact_id = $1", "messages"},
	{"send_reservations", "contact_id = $1", "send_reservations"},
	{"send_deferrals", "contact_id = $1", "send_deferrals"},
	{"split_assignments", "contact_id = $1", "split_tests"},
	{"action_ledger", "contact_id = $1", "actions"},
	{"tasks", "contact_id = $1", "tasks"},
	{"notes", "contact_id = $1", "notes"},
	{"contact_tags", "contact_id = $1", "tags"},
	{"tag_changes", "contact_id = $1", "tag_changes"},
	{"list_subscriptions", "contact_id = $1", "lists"},
	{"score_changes", "contact_id = $1", "score_changes"},
	{"segment_members", "contact_id = $1", "segments"},
	{"goal_completions", "contact_id = $1", "goals"},
	{"campaign_members", "contact_id = $1", "campaigns"},
	{"object_records", "contact_id = $1", "objects"},
	{"enrollments", "contact_id = $1", "enrollments"},
	{"journey_entries", "contact_id = $1", "journey_entries"},
	{"carts", "contact_id = $1", "carts"},
	{"dispatch_leases", "contact_id = $1", ""},
	{"contact_aliases", "contact_id = $1", "aliases"},
	{"events", "contact_id = $1", "events"},
	{"contacts", "id = $1", "profile"},
}

// ContactTables lists the tables an erasure deletes a contact's rows from.
func ContactTables() []string {
	out := make([]string, len(contactRows))
	for i, r := range contactRows {
		out[i] = r.table
	}
	return out
}

// Erasure is the record of a contact erased: who asked, when, how many runs ended. It holds
// nothing about the person but the internal contact id, which nothing maps to any more.
type Erasure struct {
	ID          int64     `json:"id"`
	ContactID   int64     `json:"contact_id"`
	RequestedBy string    `json:"requested_by"`
	Reason      string    `json:"reason,omitempty"`
	RunsEnded   int       `json:"runs_ended"`
	ErasedAt    time.Time `json:"erased_at"`
	// Deleted counts the rows deleted, per table.
	Deleted map[string]int64 `json:"deleted"`
}

// EraseContact deletes every row about the contact, calls destroyKey (the codec's data key,
// in the same transaction) and records the erasure. A later event for the same user id
// makes a new contact.
func EraseContact(ctx context.Context, db DB, e *Erasure, destroyKey func(tx pgx.Tx) error) error {
	e.Deleted = map[string]int64{}
	return WithTx(ctx, db, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `SELECT id FROM contacts WHERE id = $1 FOR UPDATE`, e.ContactID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("lock contact: %w", err)
		}
		for _, r := range contactRows {
			tag, err := tx.Exec(ctx, `DELETE FROM `+r.table+` WHERE `+r.where, e.ContactID)
			if err != nil {
				return fmt.Errorf("erase %s: %w", r.table, err)
			}
			if n := tag.RowsAffected(); n > 0 {
				e.Deleted[r.table] = n
			}
		}
		if err := destroyKey(tx); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO erasures (contact_id, requested_by, reason, runs_ended, erased_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, e.ContactID, e.RequestedBy, e.Reason, e.RunsEnded, e.ErasedAt).Scan(&e.ID)
	})
}

// ExportContact returns every row Cairn holds about the contact, by kind (profile, events,
// messages, deals, tasks, …), each row as its columns.
func ExportContact(ctx context.Context, db DB, contactID int64) (map[string]any, error) {
	out := map[string]any{}
	for _, r := range contactRows {
		if r.export == "" {
			continue
		}
		rows, err := db.Query(ctx, `SELECT to_jsonb(t) FROM `+r.table+` t WHERE `+r.where+` ORDER BY 1`, contactID)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", r.table, err)
		}
		list := []json.RawMessage{}
		for rows.Next() {
			var row json.RawMessage
			if err := rows.Scan(&row); err != nil {
				rows.Close()
				return nil, fmt.Errorf("export %s: %w", r.table, err)
			}
			list = append(list, row)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("export %s: %w", r.table, err)
		}
		if r.export == "profile" {
			if len(list) == 0 {
				return nil, ErrNotFound
			}
			out[r.export] = list[0]
			continue
		}
		out[r.export] = list
	}
	return out, nil
}
