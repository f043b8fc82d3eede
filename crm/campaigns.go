package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/journey"
)

// Campaign is a stored campaign.
type Campaign struct {
	journey.Campaign
	Paused    bool      `json:"paused"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PutCampaign saves a campaign after checking what it names: its segment, its journey (or, for
// a single message, its template; the message's journey is applied with it). A missing one is
// a *journey.ValidationError with its path. schedule runs last, in the transaction (it keeps
// the campaign's Temporal Schedule as the row says): when it fails, nothing is saved.
func PutCampaign(ctx context.Context, db DB, c *journey.Campaign, document string, schedule func(Campaign) error) (created bool, err error) {
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		probs, err := CampaignProblems(ctx, tx, c)
		if err != nil {
			return err
		}
		if len(probs) > 0 {
			return &journey.ValidationError{Problems: probs}
		}
		if c.Message != nil {
			j, doc, err := c.MessageJourney()
			if err != nil {
				return err
			}
			if _, _, err := ApplyJourney(ctx, tx, j, doc); err != nil {
				return err
			}
		}
		var stored Campaign
		err = tx.QueryRow(ctx, `INSERT INTO campaigns (id, name, segment_id, journey_id, definition, document) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET name = $2, segment_id = $3, journey_id = $4, definition = $5, document = $6, updated_at = now()
			RETURNING (xmax = 0), paused, created_at, updated_at`,
			c.ID, c.Name, c.Segment, c.EntryJourney(), c, document).Scan(&created, &stored.Paused, &stored.CreatedAt, &stored.UpdatedAt)
		if err != nil {
			return fmt.Errorf("save campaign %s: %w", c.ID, err)
		}
		stored.Campaign = *c
		return schedule(stored)
	})
	return created, err
}

// CampaignByID reads a campaign.
func CampaignByID(ctx context.Context, db DB, id string) (Campaign, error) {
	var c Campaign
	var def []byte
	err := db.QueryRow(ctx, `SELECT definition, paused, created_at, updated_at FROM campaigns WHERE id = $1`, id).
		Scan(&def, &c.Paused, &c.CreatedAt, &c.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("campaign %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("read campaign: %w", err)
	}
	if err := json.Unmarshal(def, &c.Campaign); err != nil {
		return c, fmt.Errorf("decode campaign %s: %w", id, err)
	}
	return c, nil
}

// SetCampaignPaused pauses or resumes a campaign; running is its firings not finished (to be
// told to go on, when resumed). pause runs last, in the transaction (the Temporal Schedule's
// pause): when it fails, nothing changes.
func SetCampaignPaused(ctx context.Context, db DB, id string, paused bool, pause func(Campaign) error) (running []string, err error) {
	err = WithTx(ctx, db, func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, `UPDATE campaigns SET paused = $2, updated_at = now() WHERE id = $1`, id, paused)
		if err != nil {
			return fmt.Errorf("pause campaign: %w", err)
		}
		if ct.RowsAffected() == 0 {
			return fmt.Errorf("campaign %q: %w", id, ErrNotFound)
		}
		rows, err := tx.Query(ctx, `SELECT id FROM campaign_firings WHERE campaign_id = $1 AND finished_at IS NULL ORDER BY started_at`, id)
		if err != nil {
			return fmt.Errorf("running firings: %w", err)
		}
		if running, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("running firings: %w", err)
		}
		c, err := CampaignByID(ctx, tx, id)
		if err != nil {
			return err
		}
		return pause(c)
	})
	return running, err
}

// FiringStart is what a firing learns as it begins.
type FiringStart struct {
	Members int64  `json:"members"`
	Journey string `json:"journey"`
}

// SnapshotTimeout bounds the statement that takes a segment's members at a firing.
const SnapshotTimeout = 10 * time.Minute

// BeginFiring records a firing of the campaign and takes the segment's members at that moment
// (one statement, so one snapshot), once: a retry finds the firing begun and returns it.
func BeginFiring(ctx context.Context, db DB, campaignID, firingID string, at time.Time) (FiringStart, error) {
	var out FiringStart
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		c, err := CampaignByID(ctx, tx, campaignID)
		if err != nil {
			return err
		}
		out.Journey = c.EntryJourney()
		ct, err := tx.Exec(ctx, `INSERT INTO campaign_firings (id, campaign_id, journey_id, started_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, firingID, campaignID, out.Journey, at)
		if err != nil {
			return fmt.Errorf("record firing: %w", err)
		}
		if ct.RowsAffected() == 0 {
			return tx.QueryRow(ctx, `SELECT members, journey_id FROM campaign_firings WHERE id = $1`, firingID).Scan(&out.Members, &out.Journey)
		}
		seg, err := SegmentByID(ctx, tx, c.Segment)
		if err != nil {
			return err
		}
		return bounded(ctx, tx, SnapshotTimeout, func(tx pgx.Tx) error {
			b, err := builder(ctx, tx, seg.Condition, Env{Now: at}, true)
			if err != nil {
				return err
			}
			where, err := b.compile(seg.Condition)
			if err != nil {
				return err
			}
			ct, err := tx.Exec(ctx, `INSERT INTO campaign_members (firing_id, contact_id) SELECT `+b.arg(firingID)+`, c.id FROM contacts c WHERE `+where, b.args...)
			if err != nil {
				return fmt.Errorf("take segment %s's members: %w", seg.ID, err)
			}
			out.Members = ct.RowsAffected()
			_, err = tx.Exec(ctx, `UPDATE campaign_firings SET members = $2 WHERE id = $1`, firingID, out.Members)
			return err
		})
	})
	return out, err
}

// BatchResult is what one step of a firing did.
type BatchResult struct {
	// Entered counts the members entered now; More says some are still to enter.
	Entered int  `json:"entered"`
	More    bool `json:"more"`
	// Paused says the campaign is paused: nobody entered.
	Paused bool `json:"paused"`
	// Rate and Batch are the campaign's now (it may have been changed since the firing began).
	Rate  int `json:"rate"`
	Batch int `json:"batch"`
}

// EnterCampaignBatch enters up to the campaign's batch of the firing's members that have not
// entered yet: a campaign_entered event each (keyed by firing and contact, so never twice),
// recorded with the member in one transaction. A paused campaign enters nobody.
func EnterCampaignBatch(ctx context.Context, db DB, firingID string, at time.Time) (BatchResult, error) {
	var out BatchResult
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		var campaignID, journeyID string
		if err := tx.QueryRow(ctx, `SELECT campaign_id, journey_id FROM campaign_firings WHERE id = $1`, firingID).Scan(&campaignID, &journeyID); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("firing %q: %w", firingID, ErrNotFound)
			}
			return fmt.Errorf("read firing: %w", err)
		}
		// A share lock: a pause committed before this reads as paused, and one asked for now
		// waits for this batch.
		var def []byte
		if err := tx.QueryRow(ctx, `SELECT definition, paused FROM campaigns WHERE id = $1 FOR SHARE`, campaignID).Scan(&def, &out.Paused); err != nil {
			return fmt.Errorf("read campaign: %w", err)
		}
		var c journey.Campaign
		if err := json.Unmarshal(def, &c); err != nil {
			return fmt.Errorf("decode campaign %s: %w", campaignID, err)
		}
		out.Rate, out.Batch = c.Rate, c.Batch
		if out.Paused {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT contact_id FROM campaign_members WHERE firing_id = $1 AND event_id IS NULL
			ORDER BY contact_id LIMIT $2 FOR UPDATE`, firingID, c.Batch+1)
		if err != nil {
			return fmt.Errorf("read members: %w", err)
		}
		members, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("read members: %w", err)
		}
		if out.More = len(members) > c.Batch; out.More {
			members = members[:c.Batch]
		}
		props := map[string]any{"campaign": campaignID, "firing": firingID, "journey": journeyID}
		for _, contact := range members {
			key := fmt.Sprintf("campaign:%s:%d", firingID, contact)
			id, inserted, err := appendEvent(ctx, tx, NewEvent{ContactID: contact, Name: journey.EventCampaignEntered, Properties: props,
				Source: SourceCairn, DedupeKey: key, OccurredAt: at})
			if err != nil {
				return err
			}
			if !inserted {
				if err := tx.QueryRow(ctx, `SELECT id FROM events WHERE dedupe_key = $1`, key).Scan(&id); err != nil {
					return fmt.Errorf("find entry event: %w", err)
				}
			}
			if _, err := tx.Exec(ctx, `UPDATE campaign_members SET event_id = $3 WHERE firing_id = $1 AND contact_id = $2`, firingID, contact, id); err != nil {
				return fmt.Errorf("record entry: %w", err)
			}
			out.Entered++
		}
		return nil
	})
	return out, err
}

// FinishFiring records that every member of the firing has entered.
func FinishFiring(ctx context.Context, db DB, firingID string, at time.Time) error {
	_, err := db.Exec(ctx, `UPDATE campaign_firings SET finished_at = $2 WHERE id = $1 AND finished_at IS NULL`, firingID, at)
	if err != nil {
		return fmt.Errorf("finish firing: %w", err)
	}
	return nil
}

// Firing is a firing's progress.
type Firing struct {
	ID         string     `json:"id"`
	Journey    string     `json:"journey"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Members is the segment's size at the firing; Entered counts the members whose
	// campaign_entered is recorded; Dispatched those whose entry the dispatcher has handled
	// (a run started or reached, or the journey's re-entry or entry rule said no); Failed
	// those whose entry was dead-lettered; Started the runs started by an entry and reached by
	// no later trigger.
	Members    int64 `json:"members"`
	Entered    int64 `json:"entered"`
	Dispatched int64 `json:"dispatched"`
	Failed     int64 `json:"failed"`
	Started    int64 `json:"started"`
}

// CampaignFirings lists the campaign's latest firings (newest first, at most limit) with their
// progress.
func CampaignFirings(ctx context.Context, db DB, campaignID string, limit int) ([]Firing, error) {
	rows, err := db.Query(ctx, `SELECT f.id, f.journey_id, f.started_at, f.finished_at, f.members,
			(SELECT count(*) FROM campaign_members m WHERE m.firing_id = f.id AND m.event_id IS NOT NULL),
			(SELECT count(*) FROM campaign_members m JOIN events e ON e.id = m.event_id WHERE m.firing_id = f.id AND e.dispatched_at IS NOT NULL),
			(SELECT count(*) FROM campaign_members m JOIN events e ON e.id = m.event_id WHERE m.firing_id = f.id AND e.failed_at IS NOT NULL),
			(SELECT count(*) FROM campaign_members m JOIN enrollments en ON en.event_id = m.event_id AND en.contact_id = m.contact_id
			 WHERE m.firing_id = f.id AND en.journey_id = f.journey_id)
		FROM campaign_firings f WHERE f.campaign_id = $1 ORDER BY f.started_at DESC, f.id DESC LIMIT $2`, campaignID, limit)
	if err != nil {
		return nil, fmt.Errorf("list firings: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Firing])
	if err != nil {
		return nil, fmt.Errorf("list firings: %w", err)
	}
	return out, nil
}

// CampaignProblems says what a campaign names that does not exist: its segment, its journey, or
// its message's template (each with its path; a name left empty is not looked up).
func CampaignProblems(ctx context.Context, db DB, c *journey.Campaign) ([]journey.Problem, error) {
	var probs []journey.Problem
	exists := func(query, id string) (bool, error) {
		var ok bool
		err := db.QueryRow(ctx, query, id).Scan(&ok)
		return ok, err
	}
	if c.Segment != "" {
		ok, err := exists(`SELECT EXISTS (SELECT 1 FROM segments WHERE id = $1)`, c.Segment)
		if err != nil {
			return nil, fmt.Errorf("find segment: %w", err)
		}
		if !ok {
			probs = append(probs, journey.Problem{Path: "segment", Message: fmt.Sprintf("no segment %q (PUT /v1/segments/%s first)", c.Segment, c.Segment)})
		}
	}
	switch {
	case c.Message != nil && c.Message.Template != "":
		ok, err := exists(`SELECT EXISTS (SELECT 1 FROM email_templates WHERE id = $1)`, c.Message.Template)
		if err != nil {
			return nil, fmt.Errorf("find template: %w", err)
		}
		if !ok {
			probs = append(probs, journey.Problem{Path: "message.template", Message: fmt.Sprintf("no template %q (PUT /v1/templates/%s first)", c.Message.Template, c.Message.Template)})
		}
	case c.Message == nil && c.Journey != "":
		ok, err := exists(`SELECT EXISTS (SELECT 1 FROM journey_versions WHERE journey_id = $1)`, c.Journey)
		if err != nil {
			return nil, fmt.Errorf("find journey: %w", err)
		}
		if !ok {
			probs = append(probs, journey.Problem{Path: "journey", Message: fmt.Sprintf("no journey %q (PUT /v1/journeys/%s first)", c.Journey, c.Journey)})
		}
	}
	return probs, nil
}
