package activities_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cairnhq/cairn/activities"
	"github.com/cairnhq/cairn/contract"
	"github.com/cairnhq/cairn/crm"
	"github.com/cairnhq/cairn/journey"
	"github.com/cairnhq/cairn/provider"
)

// fakeTwilio checks what Twilio's Messages API checks, and fails the first calls as told.
type fakeTwilio struct {
	mu       sync.Mutex
	failWith []int // status codes for the first calls
	ok       []map[string]string
	calls    int
	keys     []string
}

func (f *fakeTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	user, pass, auth := r.BasicAuth()
	if r.Method != http.MethodPost || r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" || !auth || user != "AC123" || pass != "secret" {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"code": 20003, "message": "Authenticate"}`))
		return
	}
	if err := r.ParseForm(); err != nil || r.Form.Get("To") == "" || r.Form.Get("From") != "+15550000000" || r.Form.Get("Body") == "" {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"code": 21604, "message": "A 'To' phone number is required."}`))
		return
	}
	if r.Form.Get("To") == "+1invalid" {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"code": 21211, "message": "The 'To' number +1invalid is not a valid phone number."}`))
		return
	}
	if len(f.failWith) > 0 {
		code := f.failWith[0]
		f.failWith = f.failWith[1:]
		if code == 429 {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"code": 20500, "message": "Internal error"}`))
		return
	}
	f.keys = append(f.keys, r.Header.Get("I-Twilio-Idempotency-Token"))
	f.ok = append(f.ok, map[string]string{"to": r.Form.Get("To"), "body": r.Form.Get("Body")})
	_, _ = w.Write([]byte(`{"sid": "SM0001", "status": "queued"}`))
}

func smsFixture(t *testing.T, f *fakeTwilio) (context.Context, *activities.Activities, int64) {
	t.Helper()
	ctx, a, s := setup(t)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	a.SMS = &provider.SMS{Client: provider.Client{Backoff: 10 * time.Millisecond}, BaseURL: srv.URL, AccountID: "AC123", Token: "secret", From: "+15550000000"}
	id := contact(t, ctx, s, "ada", map[string]any{"phone": "+15551234567", "first_name": "Ada"})
	return ctx, a, id
}

func smsStep(text string) journey.Step {
	return journey.Step{ID: "text-them", SendSMS: &journey.Message{Text: text}}
}

func TestSMSProviderFailingThenSucceedingRecordsOneSuccessfulCall(t *testing.T) {
	t.Parallel()
	f := &fakeTwilio{failWith: []int{500}}
	ctx, a, id := smsFixture(t, f)
	in := activities.ActionInput{Key: "wf/run/text-them/1", ContactID: id, Step: smsStep("Hi {{field \"first_name\"}}, your order shipped")}
	out, err := a.SendSMS(ctx, in)
	require.NoError(t, err)
	require.Equal(t, "SM0001", out.Detail["sid"])
	again, err := a.SendSMS(ctx, in)
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, 2, f.calls, "one 500, one success, and nothing for the retried activity")
	require.Equal(t, []map[string]string{{"to": "+15551234567", "body": "Hi Ada, your order shipped"}}, f.ok)
	require.Equal(t, []string{"wf/run/text-them/1"}, f.keys, "the idempotency key reaches the provider")
}

func TestSMSProviderRateLimitIsWaitedOutAsItAsks(t *testing.T) {
	t.Parallel()
	f := &fakeTwilio{failWith: []int{429}}
	ctx, a, id := smsFixture(t, f)
	start := time.Now()
	_, err := a.SendSMS(ctx, activities.ActionInput{Key: "k", ContactID: id, Step: smsStep("Hi")})
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After: 1 is honoured")
	require.Len(t, f.ok, 1)
}

func TestSMSProviderRefusalFailsTheStepWithItsMessageAndCanBeRetriedLater(t *testing.T) {
	t.Parallel()
	f := &fakeTwilio{}
	ctx, a, s := setup(t)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	a.SMS = &provider.SMS{BaseURL: srv.URL, AccountID: "AC123", Token: "secret", From: "+15550000000"}
	id := contact(t, ctx, s, "bad", map[string]any{"phone": "+1invalid"})
	_, err := a.SendSMS(ctx, activities.ActionInput{Key: "k", ContactID: id, Step: smsStep("Hi")})
	nonRetryable(t, err, "not a valid phone number")
	require.Equal(t, 1, f.calls, "a 400 is not retried")
	var ledger int
	require.NoError(t, s.QueryRow(ctx, `SELECT count(*) FROM action_ledger`).Scan(&ledger))
	require.Zero(t, ledger, "the refused call leaves no claim behind")

	noPhone := contact(t, ctx, s, "nophone", nil)
	_, err = a.SendSMS(ctx, activities.ActionInput{Key: "k2", ContactID: noPhone, Step: smsStep("Hi")})
	nonRetryable(t, err, "no phone")
}

func TestNotifyPostsTheRenderedTextToTheWebhook(t *testing.T) {
	t.Parallel()
	ctx, a, s := setup(t)
	var got map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	a.Notifier = &provider.Notify{URL: srv.URL}
	id := contact(t, ctx, s, "lead", map[string]any{"email": "lead@example.com", "company": "Acme"})
	_, err := a.Notify(ctx, activities.ActionInput{Key: "k", ContactID: id,
		Step: journey.Step{ID: "n", Notify: &journey.Message{Text: "Hot lead {{.Contact.Email}} at {{field \"company\"}}", Channel: "#sales"}}})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"text": "Hot lead lead@example.com at Acme", "channel": "#sales"}, got)
}

func TestAudienceSendsTheHashedNormalisedEmailAndRemovesWithDelete(t *testing.T) {
	t.Parallel()
	ctx, a, s := setup(t)
	var methods []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/6001/users", r.URL.Path)
		require.NoError(t, r.ParseForm())
		require.Equal(t, "fb-token", r.Form.Get("access_token"))
		var payload struct {
			Schema []string   `json:"schema"`
			Data   [][]string `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.Form.Get("payload")), &payload))
		require.Equal(t, []string{"EMAIL_SHA256"}, payload.Schema)
		// The stored "  Ada@Example.com " is trimmed and lower-cased before hashing.
		require.Equal(t, [][]string{{sha256hex("ada@example.com")}}, payload.Data)
		methods = append(methods, r.Method)
		_, _ = w.Write([]byte(`{"audience_id": "6001", "num_received": 1}`))
	}))
	t.Cleanup(srv.Close)
	a.Audience = &provider.Audience{BaseURL: srv.URL, Token: "fb-token"}
	id := contact(t, ctx, s, "ada", map[string]any{"email": "  Ada@Example.com "})
	_, err := a.AddToAudience(ctx, activities.ActionInput{Key: "k1", ContactID: id, Step: journey.Step{ID: "a", AddToAudience: "6001"}})
	require.NoError(t, err)
	_, err = a.RemoveFromAudience(ctx, activities.ActionInput{Key: "k2", ContactID: id, Step: journey.Step{ID: "r", RemoveFromAudience: "6001"}})
	require.NoError(t, err)
	require.Equal(t, []string{"POST", "DELETE"}, methods)
	require.Len(t, provider.HashEmail(" A@B.c "), 64)
	require.Equal(t, provider.HashEmail("a@b.c"), provider.HashEmail(" A@B.c "))
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestSMSRetriedAfterACrashBeforeTheCallSendsOnce(t *testing.T) {
	t.Parallel()
	f := &fakeTwilio{}
	ctx, a, id := smsFixture(t, f)
	// The first attempt claimed the call and died before making it.
	_, err := crm.ClaimExternal(ctx, a.DB, "k-crash", "send_sms", id, nil)
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		_, err = a.SendSMS(ctx, activities.ActionInput{Key: "k-crash", ContactID: id, Step: smsStep("Hi")})
		require.NoError(t, err)
	}
	require.Len(t, f.ok, 1)
}

func TestAnSMSSeesWhatAnEmailSees(t *testing.T) {
	t.Parallel()
	f := &fakeTwilio{}
	ctx, a, id := smsFixture(t, f)
	_, _, err := crm.RecordEvent(ctx, a.DB, crm.EventInput{ExternalID: "ada", Name: "Product Added", Source: "test", OccurredAt: time.Now(),
		Properties: map[string]any{"sku": "LAMP", "name": "Lamp", "price": 20, "currency": "EUR"}})
	require.NoError(t, err)
	trigger := &contract.Event{ID: 9, Name: "cart_abandoned", Properties: map[string]any{"cart_id": "k1"}}
	_, err = a.SendSMS(ctx, activities.ActionInput{Key: "k", ContactID: id, Trigger: trigger, Event: trigger,
		Step: smsStep("{{.Trigger.Name}}: {{range .Cart.Lines}}{{.Name}} {{money .Price \"EUR\"}}{{end}}")})
	require.NoError(t, err)
	require.Equal(t, "cart_abandoned: Lamp €20.00", f.ok[0]["body"])
}
