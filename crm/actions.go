package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/journey"
)

// ErrNoDeal means a deal move found no open deal to move.
var ErrNoDeal = errors.New("no open deal")

// RemoveTag untags the contact once per key; tag_removed is recorded when the tag was there.
func RemoveTag(ctx context.Context, db DB, act Action, tag string) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "remove_tag", contactID, func(tx pgx.Tx) (map[string]any, error) {
		ct, err := tx.Exec(ctx, `DELETE FROM contact_tags WHERE contact_id = $1 AND tag = $2`, contactID, tag)
		if err != nil {
			return nil, fmt.Errorf("remove tag: %w", err)
		}
		removed := ct.RowsAffected() == 1
		if removed {
			if _, err := tx.Exec(ctx, `INSERT INTO tag_changes (contact_id, tag, change) VALUES ($1, $2, 'removed')`, contactID, tag); err != nil {
				return nil, fmt.Errorf("record tag change: %w", err)
			}
			if err := appendOwn(ctx, tx, contactID, "tag_removed", map[string]any{"tag": tag}, key, act.At); err != nil {
				return nil, err
			}
		}
		return map[string]any{"tag": tag, "removed": removed}, nil
	})
}

// UpdateFields merges fields into the contact's traits (nil clears one) and records a
// field_changed event per field whose value changed.
func UpdateFields(ctx context.Context, db DB, act Action, fields map[string]any) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "update_fields", contactID, func(tx pgx.Tx) (map[string]any, error) {
		var traits map[string]any
		if err := tx.QueryRow(ctx, `SELECT traits FROM contacts WHERE id = $1 FOR UPDATE`, contactID).Scan(&traits); err != nil {
			return nil, fmt.Errorf("read fields: %w", err)
		}
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		changed := []string{}
		for _, k := range names {
			old, had := traits[k]
			nv := fields[k]
			if had && jsonEqual(old, nv) || !had && nv == nil {
				continue
			}
			changed = append(changed, k)
			if err := appendOwn(ctx, tx, contactID, "field_changed", map[string]any{"field": k, "old": old, "new": nv}, key+"/"+k, act.At, k); err != nil {
				return nil, err
			}
			if nv == nil {
				delete(traits, k)
			} else {
				traits[k] = nv
			}
		}
		email, _ := traits["email"].(string)
		if _, err := tx.Exec(ctx, `UPDATE contacts SET traits = $2, email = COALESCE(NULLIF($3, ''), email), updated_at = now() WHERE id = $1`,
			contactID, traits, email); err != nil {
			return nil, fmt.Errorf("update fields: %w", err)
		}
		return map[string]any{"changed": changed}, nil
	})
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// AdjustScore adds delta to a named score and records score_changed (old → new), so journeys
// can trigger on a score crossing a threshold.
func AdjustScore(ctx context.Context, db DB, act Action, name string, delta float64, reason string) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "adjust_score", contactID, func(tx pgx.Tx) (map[string]any, error) {
		return adjustScore(ctx, tx, contactID, name, delta, reason, key, act.At)
	})
}

// adjustScoreSQL adds to one named score in the contact's scores ("" is the default score; a
// missing one is 0) and returns the new value.
const adjustScoreSQL = `
UPDATE contacts SET scores = jsonb_set(scores, ARRAY[$2::text], to_jsonb(COALESCE((scores ->> $2::text)::numeric, 0) + $3::numeric))
WHERE id = $1
RETURNING (scores ->> $2::text)::float8`

func adjustScore(ctx context.Context, tx DB, contactID int64, name string, delta float64, reason, key string, at time.Time) (map[string]any, error) {
	var newValue float64
	err := tx.QueryRow(ctx, adjustScoreSQL, contactID, name, delta).Scan(&newValue)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("contact %d: %w", contactID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("adjust score: %w", err)
	}
	old := newValue - delta
	if _, err := tx.Exec(ctx, `INSERT INTO score_changes (contact_id, name, delta, old_value, new_value, reason) VALUES ($1, $2, $3, $4, $5, $6)`,
		contactID, name, delta, old, newValue, reason); err != nil {
		return nil, fmt.Errorf("record score change: %w", err)
	}
	if err := appendOwn(ctx, tx, contactID, "score_changed", map[string]any{"name": name, "old": old, "new": newValue, "reason": reason}, key, at); err != nil {
		return nil, err
	}
	return map[string]any{"score": name, "old": old, "new": newValue}, nil
}

// SetSubscription subscribes or unsubscribes the contact from a list and records
// list_subscribed / list_unsubscribed when the status changes.
func SetSubscription(ctx context.Context, db DB, act Action, list string, subscribed bool) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	status, event := "unsubscribed", "list_unsubscribed"
	if subscribed {
		status, event = "subscribed", "list_subscribed"
	}
	return ledger(ctx, db, key, event, contactID, func(tx pgx.Tx) (map[string]any, error) {
		var prev *string
		err := tx.QueryRow(ctx, `SELECT status FROM list_subscriptions WHERE contact_id = $1 AND list = $2 FOR UPDATE`, contactID, list).Scan(&prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("read subscription: %w", err)
		}
		if prev != nil && *prev == status {
			return map[string]any{"list": list, "changed": false}, nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO list_subscriptions (contact_id, list, status) VALUES ($1, $2, $3)
			ON CONFLICT (contact_id, list) DO UPDATE SET status = $3, changed_at = now()`, contactID, list, status); err != nil {
			return nil, fmt.Errorf("set subscription: %w", err)
		}
		if err := appendOwn(ctx, tx, contactID, event, map[string]any{"list": list}, key, act.At); err != nil {
			return nil, err
		}
		return map[string]any{"list": list, "changed": true}, nil
	})
}

// CreateDeal opens a deal for the contact and records deal_created and deal_stage_changed.
func CreateDeal(ctx context.Context, db DB, act Action, d journey.Deal) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "create_deal", contactID, func(tx pgx.Tx) (map[string]any, error) {
		if err := ensureStage(ctx, tx, d.Pipeline, d.Stage); err != nil {
			return nil, err
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO deals (contact_id, title, pipeline, stage, value, currency, owner)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, contactID, d.Title, d.Pipeline, d.Stage, d.Value, d.Currency, d.Owner).Scan(&id); err != nil {
			return nil, fmt.Errorf("create deal: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deal_stage_changes (deal_id, to_stage) VALUES ($1, $2)`, id, d.Stage); err != nil {
			return nil, fmt.Errorf("record stage: %w", err)
		}
		props := map[string]any{"deal_id": id, "pipeline": d.Pipeline, "stage": d.Stage, "value": d.Value}
		if err := appendOwn(ctx, tx, contactID, "deal_created", props, key+"/created", act.At); err != nil {
			return nil, err
		}
		if err := appendOwn(ctx, tx, contactID, "deal_stage_changed", props, key+"/stage", act.At); err != nil {
			return nil, err
		}
		return map[string]any{"deal_id": id}, nil
	})
}

// MoveDeal moves the contact's newest open deal in the pipeline to stage.
func MoveDeal(ctx context.Context, db DB, act Action, pipeline, stage string) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "move_deal", contactID, func(tx pgx.Tx) (map[string]any, error) {
		var id int64
		var from string
		err := tx.QueryRow(ctx, `SELECT id, stage FROM deals WHERE contact_id = $1 AND pipeline = $2 AND status = 'open'
			ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE`, contactID, pipeline).Scan(&id, &from)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("contact %d has no open deal in pipeline %s: %w", contactID, pipeline, ErrNoDeal)
		}
		if err != nil {
			return nil, fmt.Errorf("find deal: %w", err)
		}
		if from == stage {
			return map[string]any{"deal_id": id, "moved": false}, nil
		}
		if err := ensureStage(ctx, tx, pipeline, stage); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, `UPDATE deals SET stage = $2, updated_at = now() WHERE id = $1`, id, stage); err != nil {
			return nil, fmt.Errorf("move deal: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deal_stage_changes (deal_id, from_stage, to_stage) VALUES ($1, $2, $3)`, id, from, stage); err != nil {
			return nil, fmt.Errorf("record stage: %w", err)
		}
		props := map[string]any{"deal_id": id, "pipeline": pipeline, "stage": stage, "from": from}
		if err := appendOwn(ctx, tx, contactID, "deal_stage_changed", props, key, act.At); err != nil {
			return nil, err
		}
		return map[string]any{"deal_id": id, "moved": true, "from": from}, nil
	})
}

// CreateTask creates a task for a rep, due dueIn from now (zero: no due date).
func CreateTask(ctx context.Context, db DB, act Action, title, assignee string, dueIn time.Duration) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "create_task", contactID, func(tx pgx.Tx) (map[string]any, error) {
		var due *time.Time
		if dueIn > 0 {
			t := act.At.Add(dueIn)
			due = &t
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO tasks (contact_id, title, assignee, due_at) VALUES ($1, $2, $3, $4) RETURNING id`,
			contactID, title, assignee, due).Scan(&id); err != nil {
			return nil, fmt.Errorf("create task: %w", err)
		}
		if err := appendOwn(ctx, tx, contactID, "task_created", map[string]any{"task_id": id, "assignee": assignee, "title": title}, key, act.At); err != nil {
			return nil, err
		}
		return map[string]any{"task_id": id}, nil
	})
}

// AddNote adds a note to the contact.
func AddNote(ctx context.Context, db DB, act Action, body string) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "add_note", contactID, func(tx pgx.Tx) (map[string]any, error) {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO notes (contact_id, body) VALUES ($1, $2) RETURNING id`, contactID, body).Scan(&id); err != nil {
			return nil, fmt.Errorf("add note: %w", err)
		}
		if err := appendOwn(ctx, tx, contactID, "note_added", map[string]any{"note_id": id}, key, act.At); err != nil {
			return nil, err
		}
		return map[string]any{"note_id": id}, nil
	})
}

// RequestJourney records a start_journey request; the dispatcher starts the journey.
func RequestJourney(ctx context.Context, db DB, act Action, journeyID string) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, "start_journey", contactID, func(tx pgx.Tx) (map[string]any, error) {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM journeys WHERE id = $1)`, journeyID).Scan(&exists); err != nil {
			return nil, fmt.Errorf("find journey: %w", err)
		}
		if !exists {
			return nil, fmt.Errorf("journey %q: %w", journeyID, ErrNotFound)
		}
		if err := appendOwn(ctx, tx, contactID, journey.EventStartRequested, map[string]any{"journey": journeyID}, key, act.At); err != nil {
			return nil, err
		}
		return map[string]any{"journey": journeyID}, nil
	})
}

// RecordInternal records an event Cairn itself detected (a cart going idle), once per key.
func RecordInternal(ctx context.Context, db DB, act Action, name string, props map[string]any) (ActionResult, error) {
	key, contactID := act.Key, act.ContactID
	return ledger(ctx, db, key, name, contactID, func(tx pgx.Tx) (map[string]any, error) {
		if err := appendOwn(ctx, tx, contactID, name, props, key, act.At); err != nil {
			return nil, err
		}
		return map[string]any{"event": name}, nil
	})
}

// DealUpdate is a deal as another CRM reports it.
type DealUpdate struct {
	ExternalID string
	Contact    string // the contact's external id
	Title      string
	Pipeline   string
	Stage      string
	Value      *float64
	Owner      string
	At         time.Time
}

// SyncDeal upserts a deal reported by another system and records deal_stage_changed when its
// stage is new, in one transaction. changed says whether the stage moved.
func SyncDeal(ctx context.Context, db DB, d DealUpdate) (changed bool, err error) {
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		contactID, err := ensureContact(ctx, tx, d.Contact)
		if err != nil {
			return err
		}
		if err := ensureStage(ctx, tx, d.Pipeline, d.Stage); err != nil {
			return err
		}
		var id int64
		var from *string
		err = tx.QueryRow(ctx, `SELECT id, stage FROM deals WHERE external_id = $1 FOR UPDATE`, d.ExternalID).Scan(&id, &from)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			title := d.Title
			if title == "" {
				title = d.ExternalID
			}
			value := 0.0
			if d.Value != nil {
				value = *d.Value
			}
			if err := tx.QueryRow(ctx, `INSERT INTO deals (contact_id, title, pipeline, stage, value, owner, external_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`, contactID, title, d.Pipeline, d.Stage, value, d.Owner, d.ExternalID).Scan(&id); err != nil {
				return fmt.Errorf("create deal: %w", err)
			}
		case err != nil:
			return fmt.Errorf("find deal: %w", err)
		default:
			if _, err := tx.Exec(ctx, `UPDATE deals SET stage = $2, pipeline = $3, value = COALESCE($4, value),
				title = COALESCE(NULLIF($5, ''), title), owner = COALESCE(NULLIF($6, ''), owner), updated_at = now() WHERE id = $1`,
				id, d.Stage, d.Pipeline, d.Value, d.Title, d.Owner); err != nil {
				return fmt.Errorf("update deal: %w", err)
			}
			if *from == d.Stage {
				return nil
			}
		}
		changed = true
		if _, err := tx.Exec(ctx, `INSERT INTO deal_stage_changes (deal_id, from_stage, to_stage) VALUES ($1, $2, $3)`, id, from, d.Stage); err != nil {
			return fmt.Errorf("record stage: %w", err)
		}
		props := map[string]any{"deal_id": id, "external_id": d.ExternalID, "pipeline": d.Pipeline, "stage": d.Stage}
		if from != nil {
			props["from"] = *from
		}
		_, _, err = appendEvent(ctx, tx, NewEvent{ContactID: contactID, Name: journey.EventDealStageChanged, Properties: props, Source: SourceCRM, OccurredAt: d.At})
		return err
	})
	return changed, err
}
