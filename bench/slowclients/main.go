// Command slowclients measures what slow clients cost everyone else: the latency of normal
// ingestion requests to the starter while idle, beside the same requests while many
// connections trickle their requests in at one byte a second, in one run.
//
//	go run ./bench/slowclients -slow 1000 -requests 2000
package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnhq/cairn/bench/measure"
	"github.com/cairnhq/cairn/cluster"
	"github.com/cairnhq/cairn/codec"
	"github.com/cairnhq/cairn/dev"
	"github.com/cairnhq/cairn/pglocal"
	"github.com/cairnhq/cairn/starter"
)

func main() {
	slow := flag.Int("slow", 1000, "slow connections")
	requests := flag.Int("requests", 2000, "normal requests per phase")
	rate := flag.Int("rate", 100, "normal requests per second")
	readTimeout := flag.Duration("read-timeout", 30*time.Second, "the starter's CAIRN_HTTP_READ_TIMEOUT")
	flag.Parse()
	if err := run(*slow, *requests, *rate, *readTimeout); err != nil {
		fmt.Fprintln(os.Stderr, "slowclients:", err)
		os.Exit(1)
	}
}

const writeKey = "wk_slow"

func run(slow, requests, rate int, readTimeout time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg, err := pglocal.StartTemp(ctx, nil)
	if err != nil {
		return err
	}
	defer pg.Stop()
	ring, err := codec.ParseKeyRing(codec.NewKeyEntry("slow"))
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", dev.FreePort())
	cfg := starter.Config{Temporal: cluster.Config{Address: "127.0.0.1:1", Namespace: "default"}, DatabaseURL: pg.URL,
		HTTPAddr: addr, WriteKeys: []string{writeKey}, AdminKey: "ak", RatePerKey: 0, CartIdle: 0, Codec: codec.Config{Ring: ring},
		HTTP: starter.HTTPTimeouts{ReadHeader: starter.DefaultHTTPTimeouts.ReadHeader, Read: readTimeout,
			Write: starter.DefaultHTTPTimeouts.Write, Idle: starter.DefaultHTTPTimeouts.Idle},
		Logger: slog.New(slog.DiscardHandler)}
	go starter.Run(ctx, cfg)
	if err := measure.WaitHTTP("http://" + addr + "/healthz"); err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fmt.Printf("starter on a local PostgreSQL (Temporal unreachable: only accepting is measured); %d requests at %d/s per phase\n\n", requests, rate)
	idle := timeRequests(client, addr, requests, rate, "idle")

	// Slow clients: each opens a connection, sends its headers and then its body one byte a
	// second; the starter must cut them at its read timeout and serve everyone else meanwhile.
	var open, cut atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			open.Add(1)
			body := fmt.Sprintf(`{"userId":"slow-%d","event":"Slow"}`, i)
			head := fmt.Sprintf("POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
				basic(writeKey), len(body))
			if _, err := c.Write([]byte(head)); err != nil {
				return
			}
			for j := range len(body) {
				select {
				case <-stop:
					return
				case <-time.After(time.Second):
				}
				if _, err := c.Write([]byte{body[j]}); err != nil {
					cut.Add(1) // the server closed it
					return
				}
			}
		}()
	}
	time.Sleep(3 * time.Second) // let them all connect and start trickling
	loaded := timeRequests(client, addr, requests, rate, fmt.Sprintf("%d slow connections open", open.Load()))
	close(stop)
	wg.Wait()

	fmt.Printf("%-40s %12s %12s\n", "", "idle", "slow clients")
	fmt.Printf("%-40s %12d %12d\n", "requests answered 200", idle.ok, loaded.ok)
	fmt.Printf("%-40s %12s %12s\n", "latency p50", measure.MS(idle.p(50)), measure.MS(loaded.p(50)))
	fmt.Printf("%-40s %12s %12s\n", "latency p99", measure.MS(idle.p(99)), measure.MS(loaded.p(99)))
	fmt.Printf("%-40s %12s %11.2f×\n", "p99 slow / idle", "", float64(loaded.p(99))/float64(idle.p(99)))
	fmt.Printf("%-40s %12s %12d\n", "slow connections cut by the server", "", cut.Load())
	return nil
}

type result struct {
	ok  int
	lat []time.Duration
}

func (r result) p(q int) time.Duration { return measure.Percentile(r.lat, q) }

// timeRequests posts n track events at rate per second (open loop) and records their latencies.
func timeRequests(client *http.Client, addr string, n, rate int, label string) result {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var r result
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", "http://"+addr+"/v1/track",
				strings.NewReader(fmt.Sprintf(`{"userId":"u%d","event":"Normal","messageId":"%s-%d"}`, i, label, i)))
			req.SetBasicAuth(writeKey, "")
			req.Header.Set("Content-Type", "application/json")
			t0 := time.Now()
			resp, err := client.Do(req)
			d := time.Since(t0)
			if err != nil {
				return
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode == 200 {
				r.ok++
				r.lat = append(r.lat, d)
			}
		}()
	}
	wg.Wait()
	return r
}

func basic(user string) string { return base64.StdEncoding.EncodeToString([]byte(user + ":")) }
