package workflows_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/email"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/pglocal/pgtest"
	"github.com/cairnhq/cairn/splittest"
	"github.com/cairnhq/cairn/workflows"
)

// openers plays the recipients: each message is opened with its template's planted rate,
// the open recorded as the tracking pixel records it, at the moment it is sent.
type openers struct {
	env   *testsuite.TestWorkflowEnvironment
	db    crm.DB
	rates map[string]float64
	mu    sync.Mutex
	r     *rand.Rand
}

func (o *openers) Send(ctx context.Context, m email.Message) error {
	var id, contact int64
	var template string
	if err := o.db.QueryRow(ctx, `SELECT id, contact_id, template FROM email_messages WHERE to_address = $1 AND status = 'sending'`, m.To).
		Scan(&id, &contact, &template); err != nil {
		return err
	}
	o.mu.Lock()
	opened := o.r.Float64() < o.rates[template]
	o.mu.Unlock()
	if !opened {
		return nil
	}
	return crm.RecordEngagement(ctx, o.db, email.Claims{Kind: email.KindOpen, MessageID: id, ContactID: contact}, o.env.Now(), 0)
}

// arrivals runs the journey for each contact in turn, one every gap, as children: the
// contacts of a day of sign-ups in virtual time.
func arrivals(ctx workflow.Context, ins []contract.Input, gap time.Duration) error {
	for _, in := range ins {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: contract.WorkflowID(in.Journey.ID, in.ContactID)})
		if err := workflow.ExecuteChildWorkflow(cctx, workflows.ContactJourney, in).Get(ctx, nil); err != nil {
			return err
		}
		if err := workflow.Sleep(ctx, gap); err != nil {
			return err
		}
	}
	return nil
}

// A split test in virtual time whose variant B is opened by 30 % of contacts and A by 20 %:
// contacts alternate between them until the test is decided for B at 95 % (every variant
// having min_sample contacts), the decision is recorded once with its numbers, and every
// contact after it takes B.
func TestASplitTestWithPlantedRatesDecidesBAndNewContactsTakeIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	require.NoError(t, crm.Migrate(ctx, pool))
	for _, id := range []string{"a", "b"} {
		_, err := crm.PutTemplate(ctx, pool, email.Template{ID: id, Subject: "Subject " + id, Text: "Hello"})
		require.NoError(t, err)
	}
	const contacts = 1600
	_, err := pool.Exec(ctx, `INSERT INTO contacts (external_id, email) SELECT 'c' || n, 'c' || n || '@example.com' FROM generate_series(1, $1) n`, contacts)
	require.NoError(t, err)
	doc := `
id: subject-test
trigger: {event: e}
steps:
  - id: subject
    split_test:
      variants:
        - {id: a, steps: [{id: send-a, send_email: {template: a}}]}
        - {id: b, steps: [{id: send-b, send_email: {template: b}}]}
      metric: opened
      min_sample: 100
      confidence: 0.95
      max_duration: 30d
`
	j, err := journey.Decode([]byte(doc))
	require.NoError(t, err)
	_, _, err = crm.ApplyJourney(ctx, pool, j, doc)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `SELECT id FROM contacts ORDER BY id`)
	require.NoError(t, err)
	var ins []contract.Input
	for rows.Next() {
		var id int64
		require.NoError(t, rows.Scan(&id))
		ins = append(ins, contract.Input{Journey: *j, Version: 1, ContactID: id})
	}
	require.NoError(t, rows.Err())

	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))) // 1,600 runs' lines
	env := suite.NewTestWorkflowEnvironment()
	env.SetTestTimeout(5 * time.Minute)
	env.RegisterWorkflow(workflows.ContactJourney)
	env.RegisterWorkflow(arrivals)
	box := &openers{env: env, db: pool, rates: map[string]float64{"a": 0.20, "b": 0.30}, r: rand.New(rand.NewPCG(14, 2))}
	env.RegisterActivity(&activities.Activities{DB: pool, Clock: envClock{env}, Mail: &activities.Mail{
		Sender: box, Tracker: email.Tracker{Signer: email.Signer{Key: []byte("k")}, BaseURL: "https://t.example.com"}, Domain: "example.com"}})
	env.SetStartTime(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	env.ExecuteWorkflow(arrivals, ins, 5*time.Minute)
	require.NoError(t, env.GetWorkflowError())

	res, err := crm.SplitResults(ctx, pool, "subject-test", "subject", *j.Steps[0].SplitTest, env.Now())
	require.NoError(t, err)
	require.Equal(t, crm.SplitDecided, res.Status)
	d := res.Decision
	require.Equal(t, "b", d.Winner)
	require.Equal(t, splittest.ReasonSignificant, d.Reason)
	require.Less(t, d.PValue, 0.05)
	a, b := d.Variants[0], d.Variants[1]
	require.GreaterOrEqual(t, a.Contacts, int64(100))
	require.InDelta(t, a.Contacts, b.Contacts, 1, "assigned in turn")
	t.Logf("decided for %s (%s) after %d + %d contacts: A %.1f %%, B %.1f %% opened, p = %.4f", d.Winner, d.Reason,
		a.Contacts, b.Contacts, 100*a.Rate, 100*b.Rate, d.PValue)

	var inTest, after, afterB int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE in_test), count(*) FILTER (WHERE NOT in_test),
		count(*) FILTER (WHERE NOT in_test AND variant = 'b') FROM split_assignments`).Scan(&inTest, &after, &afterB))
	require.Equal(t, contacts, inTest+after)
	require.Equal(t, int(a.Contacts+b.Contacts), inTest, "the decision's numbers are those of every contact in the test")
	require.Positive(t, after, "the test was decided before the last contact")
	require.Equal(t, after, afterB, "every contact after the decision took the winner")
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM split_decisions`))
	// Every contact got one email, from its variant.
	require.Equal(t, contacts, count(t, pool, `SELECT count(*) FROM email_messages WHERE status = 'sent'`))
	require.Equal(t, after+int(b.Contacts), count(t, pool, `SELECT count(*) FROM email_messages WHERE template = 'b'`))
}

func count(t *testing.T, db crm.DB, sql string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(context.Background(), sql).Scan(&n))
	return n
}
