package e2e_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"

	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/dev/mailcatcher"
	"github.com/cairnhq/cairn/pglocal/pgtest"
)

// TestProductionShapedClusterRunsAJourneyObservably runs Cairn as production does: a Temporal
// server persisted in PostgreSQL with SQL visibility (`cairn temporal-server`), and `cairn
// worker` and `cairn starter` as processes of their own with JSON logs, metrics listeners and
// OTLP tracing. One tracked event runs a journey to its email and its tag in PostgreSQL; a
// real Prometheus scrapes both processes; promtool accepts both outputs; the spans of the run
// share one trace from the HTTP request to the SMTP call; no log line holds an email address.
func TestProductionShapedClusterRunsAJourneyObservably(t *testing.T) {
	prometheusBin, promtoolBin := prometheusBinaries(t)
	bin := buildCairn(t)
	dir := t.TempDir()
	dbURL := pgtest.URL(t)

	// Temporal on PostgreSQL, in databases of its own on the test server.
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	histDB, visDB := "temporal_"+suffix, "temporal_vis_"+suffix
	t.Cleanup(func() { dropDatabases(dbURL, histDB, visDB) })
	temporalAddr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	temporal := startProc(t, dir, "temporal", bin, nil, "temporal-server", "--postgres", dbURL, "--db", histDB, "--visibility-db", visDB,
		"--port", strings.Split(temporalAddr, ":")[1], "--plain-namespace", "bare", "--log", filepath.Join(dir, "temporal-server.log"))
	require.Eventually(t, func() bool { return strings.Contains(temporal.output(), "Temporal ready at") }, 90*time.Second, 100*time.Millisecond,
		"temporal-server did not start: %s", temporal.output)

	catcher, err := mailcatcher.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { catcher.Close() })
	smtpHost, smtpPort, _ := strings.Cut(catcher.Addr(), ":")
	otlp := newOTLPReceiver(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	workerMetrics := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	starterMetrics := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	common := []string{"DATABASE_URL=" + dbURL, "TEMPORAL_ADDRESS=" + temporalAddr, "CAIRN_LOG_FORMAT=json", "CAIRN_LOG_LEVEL=info",
		"CAIRN_TRACKING_KEY=" + trackingKey, "CAIRN_CODEC_KEYS=" + codec.NewKeyEntry("prod-1"),
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.url, "OTEL_BSP_SCHEDULE_DELAY=100"}

	t.Run("a worker refuses a namespace without Cairn's search attributes, naming the commands", func(t *testing.T) {
		p := startProc(t, dir, "worker-bare", bin, append(common, "TEMPORAL_NAMESPACE=bare"), "worker")
		require.Error(t, p.wait(60*time.Second))
		require.Contains(t, p.output(), "temporal operator search-attribute create --namespace bare --name CairnContact --type Keyword")
	})

	worker := startProc(t, dir, "worker", bin, append(common, "CAIRN_METRICS_ADDR="+workerMetrics,
		"CAIRN_SMTP_HOST="+smtpHost, "CAIRN_SMTP_PORT="+smtpPort, "CAIRN_SMTP_TLS=none", "CAIRN_SMTP_FROM=Cairn <news@cairn.test>",
		"CAIRN_PUBLIC_URL=http://"+httpAddr, "OTEL_SERVICE_NAME=cairn-worker"), "worker")
	starter := startProc(t, dir, "starter", bin, append(common, "CAIRN_HTTP_ADDR="+httpAddr, "CAIRN_METRICS_ADDR="+starterMetrics,
		"CAIRN_WRITE_KEYS="+writeKey, "CAIRN_ADMIN_KEY="+adminKey, "OTEL_SERVICE_NAME=cairn-starter"), "starter")
	for _, u := range []string{"http://" + workerMetrics + "/readyz", "http://" + starterMetrics + "/readyz", "http://" + httpAddr + "/readyz"} {
		require.Eventually(t, func() bool { return httpStatus(u) == 200 }, 60*time.Second, 100*time.Millisecond,
			"%s not ready; worker: %s\nstarter: %s", u, worker.output, starter.output)
	}
	require.Equal(t, 200, httpStatus("http://"+workerMetrics+"/livez"))
	require.Equal(t, 200, httpStatus("http://"+httpAddr+"/healthz"))
	require.Equal(t, 404, httpStatus("http://"+httpAddr+"/metrics"), "with CAIRN_METRICS_ADDR, metrics leave the API")

	prom := startPrometheus(t, dir, prometheusBin, workerMetrics, starterMetrics)

	s := &system{ctx: context.Background(), url: "http://" + httpAddr}
	s.template(t, "prod-hello", "https://example.com/start")
	s.apply(t, "prod-welcome", "id: prod-welcome\ntrigger: {event: Signed Up}\nsteps:\n  - {add_tag: welcomed}\n  - {id: hello, send_email: {template: prod-hello}}\n")
	req, _ := http.NewRequest("POST", s.url+"/v1/track", strings.NewReader(
		`{"userId":"grace","event":"Signed Up","context":{"traits":{"email":"grace@example.com"}}}`))
	req.SetBasicAuth(writeKey, "")
	req.Header.Set(RequestIDHeaderForTest, "req-prod-1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "req-prod-1", resp.Header.Get(RequestIDHeaderForTest))

	// The data path: the run's tag in PostgreSQL, its email sent, the run listed by SQL visibility.
	conn, err := pgx.Connect(s.ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(s.ctx)
	require.Eventually(t, func() bool {
		var n int
		return conn.QueryRow(s.ctx, `SELECT count(*) FROM contact_tags t JOIN contacts c ON c.id = t.contact_id
			WHERE c.external_id = 'grace' AND t.tag = 'welcomed'`).Scan(&n) == nil && n == 1
	}, 60*time.Second, 100*time.Millisecond, "the run's tag; worker: %s", worker.output)
	require.Eventually(t, func() bool { return len(catcher.Messages()) == 1 }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, []string{"grace@example.com"}, catcher.Messages()[0].To)
	cl, err := client.Dial(client.Options{HostPort: temporalAddr, Logger: sdklog.NewStructuredLogger(quiet())})
	require.NoError(t, err)
	defer cl.Close()
	require.Eventually(t, func() bool {
		r, err := cl.ListWorkflow(s.ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: "CairnJourney = 'prod-welcome' AND CairnContact = 'grace'"})
		return err == nil && len(r.Executions) == 1
	}, 30*time.Second, 200*time.Millisecond, "the run found by its search attributes")

	t.Run("Prometheus scrapes both processes and sees the counters move", func(t *testing.T) {
		for _, q := range []string{
			`sum(up{job="cairn"})`,
			`sum(cairn_events_accepted_total{source="segment"})`,
			`sum(cairn_runs_started_total{journey="prod-welcome"})`,
			`sum(cairn_steps_total{kind="send_email",outcome="done"})`,
			`sum(cairn_steps_total{kind="add_tag",outcome="done"})`,
			`sum(cairn_sends_total{channel="email",outcome="sent"})`,
			`sum(cairn_dispatch_lag_seconds_count)`,
			`sum(temporal_workflow_task_execution_latency_seconds_count)`,
			`sum(temporal_activity_execution_latency_seconds_count)`,
			`sum(temporal_request_total)`,
		} {
			want := 1.0
			if strings.HasPrefix(q, "sum(up") {
				want = 2
			}
			require.Eventually(t, func() bool { return prom.query(q) >= want }, 30*time.Second, 250*time.Millisecond,
				"%s: got %v, want ≥ %v", q, prom.query(q), want)
		}
	})

	t.Run("promtool accepts both processes' metrics", func(t *testing.T) {
		for _, addr := range []string{workerMetrics, starterMetrics} {
			body := httpBody(t, "http://"+addr+"/metrics")
			require.Contains(t, body, "cairn_")
			check := exec.Command(promtoolBin, "check", "metrics")
			check.Stdin = strings.NewReader(body)
			out, err := check.CombinedOutput()
			require.NoError(t, err, "promtool check metrics on %s:\n%s", addr, out)
		}
	})

	t.Run("the alert rules in docs/operations.md are valid and name metrics the processes export", func(t *testing.T) {
		doc, err := os.ReadFile("../docs/operations.md")
		require.NoError(t, err)
		_, after, ok := strings.Cut(string(doc), "### Alerts")
		require.True(t, ok)
		_, block, ok := strings.Cut(after, "```yaml\n")
		require.True(t, ok)
		rules, _, ok := strings.Cut(block, "```")
		require.True(t, ok)
		file := filepath.Join(dir, "cairn-alerts.yml")
		require.NoError(t, os.WriteFile(file, []byte(rules), 0o644))
		out, err := exec.Command(promtoolBin, "check", "rules", file).CombinedOutput()
		require.NoError(t, err, "promtool check rules:\n%s", out)
		// Cairn's metrics exist from the start; the SDK's appear once recorded (an activity
		// run eagerly records no schedule-to-start latency), so only Cairn's are looked for.
		exported := httpBody(t, "http://"+workerMetrics+"/metrics") + httpBody(t, "http://"+starterMetrics+"/metrics")
		for _, m := range regexp.MustCompile(`\bcairn_[a-z_]+`).FindAllString(rules, -1) {
			m = strings.TrimSuffix(m, "_bucket")
			require.True(t, strings.Contains(exported, "# TYPE "+m+" "), "alert on %s, which no process exports", m)
		}
	})

	t.Run("one trace runs from the HTTP request to the SMTP call", func(t *testing.T) {
		var trace string
		require.Eventually(t, func() bool {
			trace = otlp.traceOf("cairn-worker", "smtp send")
			return trace != ""
		}, 30*time.Second, 100*time.Millisecond, "no smtp span exported")
		names := otlp.spansIn(trace)
		for _, want := range []string{"cairn-starter: POST /v1/track", "cairn-starter: dispatch event",
			"cairn-starter: SignalWithStartWorkflow:ContactJourney", "cairn-worker: RunWorkflow:ContactJourney",
			"cairn-worker: RunActivity:SendEmail", "cairn-worker: smtp send"} {
			require.Contains(t, names, want, "spans of trace %s: %v", trace, names)
		}
		require.Equal(t, "req-prod-1", otlp.attr(trace, "POST /v1/track", "cairn.request_id"))
	})

	t.Run("log lines are JSON, one per request with its id, and none holds an email address", func(t *testing.T) {
		var requests int
		for _, p := range []*proc{worker, starter} {
			for _, line := range strings.Split(strings.TrimSpace(p.output()), "\n") {
				var rec map[string]any
				require.NoError(t, json.Unmarshal([]byte(line), &rec), "%s: not JSON: %s", p.name, line)
				require.False(t, emailLike.MatchString(line), "%s logged an email address: %s", p.name, line)
				if rec["msg"] == "http request" && rec["route"] == "POST /v1/track" {
					requests++
					require.Equal(t, "req-prod-1", rec["request_id"])
					require.NotEmpty(t, rec["trace_id"])
				}
			}
		}
		require.Equal(t, 1, requests, "one line for the one track request")
	})
}

// RequestIDHeaderForTest is starter.RequestIDHeader, spelled out: clients use the literal.
const RequestIDHeaderForTest = "X-Request-Id"

// emailLike finds an email address anywhere in a log line.
var emailLike = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)

// prometheusBinaries finds prometheus and promtool, installing Debian's package when they are
// missing and the test runs as root; the test is skipped only when neither works.
func prometheusBinaries(t *testing.T) (string, string) {
	t.Helper()
	find := func() (string, string, bool) {
		p, err1 := exec.LookPath("prometheus")
		pt, err2 := exec.LookPath("promtool")
		return p, pt, err1 == nil && err2 == nil
	}
	if p, pt, ok := find(); ok {
		return p, pt
	}
	if _, err := exec.LookPath("apt-get"); err == nil && os.Geteuid() == 0 {
		t.Log("installing Debian's prometheus package (prometheus, promtool)")
		cmd := exec.Command("apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("apt-get install prometheus: %v\n%s", err, out)
		}
	}
	p, pt, ok := find()
	if !ok {
		missing(t, "prometheus and promtool are not installed and could not be installed (apt-get install prometheus): the production-shaped test needs them")
	}
	return p, pt
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildCairn builds the cairn binary once per test run.
func buildCairn(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cairn-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "cairn")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/cairn")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/cairn: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return builtBin
}

// proc is a process the test runs; its stdout and stderr are kept for checks.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) wait(limit time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(limit):
		return fmt.Errorf("%s still running after %s", p.name, limit)
	}
}

func startProc(t *testing.T, dir, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(t, p.cmd.Start())
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if p.wait(20*time.Second) != nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.output())
		}
	})
	return p
}

func httpStatus(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func dropDatabases(dbURL string, names ...string) {
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	for _, n := range names {
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+n+" WITH (FORCE)")
	}
}

type prometheusServer struct{ url string }

func startPrometheus(t *testing.T, dir, bin string, targets ...string) *prometheusServer {
	t.Helper()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	conf := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: cairn
    static_configs: [{targets: [%s]}]
`, strings.Join(quoted, ", "))), 0o644))
	addr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	startProc(t, dir, "prometheus", bin, nil, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr)
	p := &prometheusServer{url: "http://" + addr}
	require.Eventually(t, func() bool { return httpStatus(p.url+"/-/ready") == 200 }, 60*time.Second, 200*time.Millisecond)
	return p
}

// query evaluates an instant query and returns its first value (-1 when there is none).
func (p *prometheusServer) query(q string) float64 {
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Data.Result) == 0 {
		return -1
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return -1
	}
	return v
}

// otlpReceiver takes OTLP/HTTP trace exports (protobuf), as a collector would.
type otlpReceiver struct {
	url   string
	mu    sync.Mutex
	spans []span
}

type span struct {
	service, name, trace string
	attrs                map[string]string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	addr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(r.serve)}
	go srv.ListenAndServe()
	t.Cleanup(func() { srv.Close() })
	r.url = "http://" + addr
	require.Eventually(t, func() bool { return httpStatus(r.url) != 0 }, 5*time.Second, 20*time.Millisecond)
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &export); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	r.mu.Lock()
	for _, rs := range export.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				attrs := map[string]string{}
				for _, a := range sp.Attributes {
					attrs[a.Key] = a.GetValue().GetStringValue()
				}
				r.spans = append(r.spans, span{service: service, name: sp.Name, trace: hex.EncodeToString(sp.TraceId), attrs: attrs})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// traceOf is the trace id of the first span of that service and name.
func (r *otlpReceiver) traceOf(service, name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.service == service && s.name == name {
			return s.trace
		}
	}
	return ""
}

// spansIn lists "service: name" of the trace's spans.
func (r *otlpReceiver) spansIn(trace string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.spans {
		if s.trace == trace {
			out = append(out, s.service+": "+s.name)
		}
	}
	return out
}

func (r *otlpReceiver) attr(trace, name, key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.trace == trace && s.name == name {
			return s.attrs[key]
		}
	}
	return ""
}
