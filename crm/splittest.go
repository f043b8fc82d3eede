package crm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/splittest"
)

// JudgeEvery is how often, at most, a split test's results are judged as contacts reach it:
// the test's guarantee holds however often it is looked at, so this only bounds the work.
const JudgeEvery = time.Minute

// SplitVisit is one contact reaching a split test: the visit's idempotency key, and the run
// it belongs to (RunKey prefixes the idempotency keys of the run's sends; RunID is its
// chain's first run, under which goals are recorded).
type SplitVisit struct {
	Key       string
	Journey   string
	Step      string
	ContactID int64
	RunKey    string
	RunID     string
	At        time.Time
}

// SplitAssignment is the variant a visit takes: while the test runs, the next in turn
// (InTest: it counts in the results); once decided, the winner.
type SplitAssignment struct {
	Variant string `json:"variant"`
	InTest  bool   `json:"in_test"`
	// Decided is set when the test is decided (by this visit's look or an earlier one).
	Decided *splittest.Decision `json:"decided,omitempty"`
}

// AssignSplit assigns the visit a variant of test t, once per key: a retry gets the same one.
// Contacts are sent down the variants in turn (the test's row locked, so two at once do not
// take the same turn), which keeps the variants' sizes within one of each other. At most
// every JudgeEvery, the visit judges the results first: a test decided then, or before, sends
// the visit down the winner, outside the test.
func AssignSplit(ctx context.Context, db DB, v SplitVisit, t journey.SplitTest) (*SplitAssignment, error) {
	out := &SplitAssignment{}
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT variant, in_test FROM split_assignments WHERE idempotency_key = $1`, v.Key).Scan(&out.Variant, &out.InTest)
		if err == nil {
			out.Decided, err = decision(ctx, tx, v.Journey, v.Step)
			return err
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read assignment: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO split_tests (journey_id, step_id, started_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			v.Journey, v.Step, v.At); err != nil {
			return fmt.Errorf("start split test: %w", err)
		}
		var assigned int64
		var started time.Time
		var judged *time.Time
		if err := tx.QueryRow(ctx, `SELECT assigned, started_at, evaluated_at FROM split_tests WHERE journey_id = $1 AND step_id = $2 FOR UPDATE`,
			v.Journey, v.Step).Scan(&assigned, &started, &judged); err != nil {
			return fmt.Errorf("lock split test: %w", err)
		}
		if out.Decided, err = decision(ctx, tx, v.Journey, v.Step); err != nil {
			return err
		}
		if out.Decided == nil && (judged == nil || v.At.Sub(*judged) >= JudgeEvery) {
			if out.Decided, _, err = judge(ctx, tx, v.Journey, v.Step, t, started, v.At); err != nil {
				return err
			}
		}
		if out.Decided != nil {
			out.Variant = out.Decided.Winner
		} else {
			out.Variant, out.InTest = t.Variants[assigned%int64(len(t.Variants))].ID, true
			if _, err := tx.Exec(ctx, `UPDATE split_tests SET assigned = assigned + 1 WHERE journey_id = $1 AND step_id = $2`, v.Journey, v.Step); err != nil {
				return fmt.Errorf("count assignment: %w", err)
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO split_assignments (idempotency_key, journey_id, step_id, contact_id, run_key, run_id, variant, in_test, assigned_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, v.Key, v.Journey, v.Step, v.ContactID, v.RunKey, v.RunID, out.Variant, out.InTest, v.At)
		if err != nil {
			return fmt.Errorf("record assignment: %w", err)
		}
		return nil
	})
	return out, err
}

// SplitResult is a split test's results now: its definition's parameters, the numbers of each
// variant (contacts sent down it while the test ran, and those that converted), the leader
// and how sure the test is of it, and the decision once there is one.
type SplitResult struct {
	Step        string           `json:"step"`
	Metric      string           `json:"metric"`
	MinSample   int              `json:"min_sample"`
	Confidence  float64          `json:"confidence"`
	MaxDuration journey.Duration `json:"max_duration"`
	Default     string           `json:"default,omitempty"`
	// Status is waiting (no contact yet), running or decided.
	Status    string     `json:"status"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	splittest.Judgement
	Decision *splittest.Decision `json:"decision,omitempty"`
}

// Split test statuses.
const (
	SplitWaiting = "waiting"
	SplitRunning = "running"
	SplitDecided = "decided"
)

// SplitResults judges the split test at step of the journey now, and records the decision
// when this look decides it (a test past its max_duration is decided by the first look after).
func SplitResults(ctx context.Context, db DB, journeyID, step string, t journey.SplitTest, now time.Time) (*SplitResult, error) {
	r := &SplitResult{Step: step, Metric: t.Metric, MinSample: t.MinSample, Confidence: t.Confidence, MaxDuration: t.MaxDuration,
		Default: t.Default, Status: SplitWaiting}
	err := WithTx(ctx, db, func(tx pgx.Tx) error {
		var started time.Time
		err := tx.QueryRow(ctx, `SELECT started_at FROM split_tests WHERE journey_id = $1 AND step_id = $2 FOR UPDATE`, journeyID, step).Scan(&started)
		if errors.Is(err, pgx.ErrNoRows) {
			r.Judgement = splittest.Judge(zeroArms(t), t.MinSample, t.Confidence)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read split test: %w", err)
		}
		r.StartedAt, r.Status = &started, SplitRunning
		if r.Decision, err = decision(ctx, tx, journeyID, step); err != nil {
			return err
		}
		decided, j, err := judge(ctx, tx, journeyID, step, t, started, now)
		if err != nil {
			return err
		}
		r.Judgement = j
		if r.Decision == nil {
			r.Decision = decided
		}
		if r.Decision != nil {
			r.Status = SplitDecided
		}
		return nil
	})
	return r, err
}

func zeroArms(t journey.SplitTest) []splittest.Arm {
	arms := make([]splittest.Arm, len(t.Variants))
	for i, v := range t.Variants {
		arms[i] = splittest.Arm{ID: v.ID}
	}
	return arms
}

// judge counts the test's results and, unless it was decided before, decides it when they
// (or the time it has run) say so, recording the decision with its numbers once.
func judge(ctx context.Context, tx pgx.Tx, journeyID, step string, t journey.SplitTest, started, now time.Time) (*splittest.Decision, splittest.Judgement, error) {
	arms := zeroArms(t)
	for i, v := range t.Variants {
		var err error
		if goal := t.Goal(); goal != "" {
			err = tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM goal_completions g
					WHERE g.journey_id = a.journey_id AND g.contact_id = a.contact_id AND g.goal_id = $4 AND g.run_id = a.run_id))
				FROM split_assignments a WHERE a.journey_id = $1 AND a.step_id = $2 AND a.variant = $3 AND a.in_test`,
				journeyID, step, v.ID, goal).Scan(&arms[i].Contacts, &arms[i].Conversions)
		} else {
			event := "email_opened"
			if t.Metric == journey.MetricClicked {
				event = "email_clicked"
			}
			err = tx.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM email_messages m
					JOIN events e ON e.contact_id = m.contact_id AND e.name = $4 AND e.properties ->> 'message_id' = m.id::text
					WHERE m.contact_id = a.contact_id AND left(m.idempotency_key, length(a.run_key)) = a.run_key AND m.step_id = ANY ($5)))
				FROM split_assignments a WHERE a.journey_id = $1 AND a.step_id = $2 AND a.variant = $3 AND a.in_test`,
				journeyID, step, v.ID, event, v.VariantStepIDs()).Scan(&arms[i].Contacts, &arms[i].Conversions)
		}
		if err != nil {
			return nil, splittest.Judgement{}, fmt.Errorf("count split test results: %w", err)
		}
	}
	j := splittest.Judge(arms, t.MinSample, t.Confidence)
	if _, err := tx.Exec(ctx, `UPDATE split_tests SET evaluated_at = $3 WHERE journey_id = $1 AND step_id = $2`, journeyID, step, now); err != nil {
		return nil, j, fmt.Errorf("record look: %w", err)
	}
	if prior, err := decision(ctx, tx, journeyID, step); err != nil || prior != nil {
		return prior, j, err
	}
	d, ok := splittest.Decide(t, arms, started, now)
	if !ok {
		return nil, j, nil
	}
	numbers, err := json.Marshal(d)
	if err != nil {
		return nil, j, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO split_decisions (journey_id, step_id, winner, reason, numbers, decided_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT DO NOTHING`, journeyID, step, d.Winner, d.Reason, numbers, now); err != nil {
		return nil, j, fmt.Errorf("record decision: %w", err)
	}
	got, err := decision(ctx, tx, journeyID, step)
	return got, j, err
}

// decision is the test's recorded decision, or nil.
func decision(ctx context.Context, tx pgx.Tx, journeyID, step string) (*splittest.Decision, error) {
	var numbers []byte
	err := tx.QueryRow(ctx, `SELECT numbers FROM split_decisions WHERE journey_id = $1 AND step_id = $2`, journeyID, step).Scan(&numbers)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read decision: %w", err)
	}
	d := &splittest.Decision{}
	if err := json.Unmarshal(numbers, d); err != nil {
		return nil, fmt.Errorf("decode decision: %w", err)
	}
	return d, nil
}
