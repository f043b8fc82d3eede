package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Check is one condition of readiness: the database answers, Temporal answers, the worker
// polls. Run returns nil when it holds.
type Check struct {
	Name string
	Run  func(context.Context) error
}

// checkTimeout bounds each readiness check: a probe must answer before its own timeout.
const checkTimeout = 2 * time.Second

// Livez answers 200 while the process serves HTTP at all: restart it when this fails.
func Livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, map[string]any{"status": "ok"})
	})
}

// Readyz runs every check at once (each within 2 s) and answers 200 when all hold, 503 with
// the failures otherwise. ?exclude=NAME (repeatable) leaves a check out, as Kubernetes'
// own /readyz does: a starter that should keep accepting events while Temporal is down is
// probed with /readyz?exclude=temporal.
func Readyz(checks ...Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		exclude := r.URL.Query()["exclude"]
		results := map[string]string{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			if slices.Contains(exclude, c.Name) {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
				defer cancel()
				res := "ok"
				if err := c.Run(ctx); err != nil {
					res = err.Error()
				}
				mu.Lock()
				results[c.Name] = res
				mu.Unlock()
			}()
		}
		wg.Wait()
		status, code := "ok", http.StatusOK
		for _, res := range results {
			if res != "ok" {
				status, code = "unavailable", http.StatusServiceUnavailable
			}
		}
		writeStatus(w, code, map[string]any{"status": status, "checks": results})
	})
}

func writeStatus(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// Mux serves /metrics, /livez, /readyz and /healthz (the same as /readyz): the worker's
// small listener, and the starter's when CAIRN_METRICS_ADDR is set.
func Mux(checks ...Check) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler())
	mux.Handle("GET /livez", Livez())
	mux.Handle("GET /readyz", Readyz(checks...))
	mux.Handle("GET /healthz", Readyz(checks...))
	return mux
}

// Serve listens on addr and serves Mux(checks...) until the returned server is closed; its
// Addr is the address it listens on (a port 0 picked).
func Serve(addr string, checks ...Check) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s (CAIRN_METRICS_ADDR): %w", addr, err)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: Mux(checks...), ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return srv, nil
}
