package router

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
	"go.uber.org/goleak"
)

// TestStaticStability: a control-plane outage never stops running apps.
// The router keeps serving its last table when the source goes away, and a
// router restarted while the source is still down starts from its state
// file and serves.
func TestStaticStability(t *testing.T) {
	a := newBackend(t, "a")
	state := stateFileIn(t)
	src := NewStaticSource(Route{App: "a", Release: 4, Hosts: []string{"a.example.com"}, Upstreams: []string{a.addr()}})

	opts := Options{Source: src, StateFile: state, HTTPAddr: "127.0.0.1:0"}
	tr := startRouter(t, opts)
	tr.waitRelease(t, "a", 4)
	if err := wait.For(t.Context(), "the state file", 5*time.Second, 10*time.Millisecond, func(context.Context) error {
		_, err := os.Stat(state)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	src.SetDown(ErrSourceDown)
	time.Sleep(300 * time.Millisecond) // let the watcher fail and back off
	for range 5 {
		if resp, body := tr.get(t, "a.example.com", "/"); resp.StatusCode != 200 || body != "a" {
			t.Fatalf("source down: got %d %q, want the last table to keep serving", resp.StatusCode, body)
		}
	}
	if n := counterValue(t, tr.Registry(), "berth_router_source_errors_total"); n < 1 {
		t.Errorf("source errors = %v, want the outage counted", n)
	}

	// Restart with the source still down: the state file is the table.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	down := SourceFunc(func(ctx context.Context, fn func([]Route)) error { return ErrSourceDown })
	tr2 := startRouter(t, Options{Source: down, StateFile: state})
	if resp, body := tr2.get(t, "a.example.com", "/"); resp.StatusCode != 200 || body != "a" {
		t.Fatalf("restart with the source down: got %d %q, want the state file's routes served", resp.StatusCode, body)
	}
	if rt, ok := tr2.Table().App("a"); !ok || rt.Release != 4 {
		t.Errorf("table after restart: %+v %v, want app a release 4", rt, ok)
	}
	var h health
	_, body := tr2.get(t, "x", HealthPath)
	decodeJSON(t, body, &h)
	if h.SourceLive || h.Routes != 1 {
		t.Errorf("health = %+v, want 1 route from disk and source_live false", h)
	}
	tr2.Stop(ctx)

	// And when the source comes back, it wins.
	src.SetDown(nil)
	src.Set(Route{App: "a", Release: 5, Hosts: []string{"a.example.com"}, Upstreams: []string{a.addr()}})
	tr3 := startRouter(t, Options{Source: src, StateFile: state})
	tr3.waitRelease(t, "a", 5)
	_, body = tr3.get(t, "x", HealthPath)
	decodeJSON(t, body, &h)
	if !h.SourceLive {
		t.Errorf("health = %+v, want source_live", h)
	}
}

// TestStartWithoutStateOrSource: a router with a state file that does not
// exist yet and a source that is down serves 404s, not errors.
func TestStartWithoutStateOrSource(t *testing.T) {
	down := SourceFunc(func(ctx context.Context, fn func([]Route)) error { return ErrSourceDown })
	tr := startRouter(t, Options{Source: down, StateFile: stateFileIn(t)})
	if resp, _ := tr.get(t, "a.apps.test", "/"); resp.StatusCode != 404 {
		t.Errorf("got %d, want 404", resp.StatusCode)
	}
}

// TestPassiveHealth: with one of two upstreams down, every request still
// succeeds (connection failures are retried on the other), and the dead one
// is skipped after its first failure instead of being tried every time.
func TestPassiveHealth(t *testing.T) {
	for _, fe := range frontends {
		t.Run(string(fe), func(t *testing.T) {
			live := newBackend(t, "live")
			dead := closedAddr(t)
			src := NewStaticSource(
				Route{App: "a", Release: 1, Upstreams: []string{dead, live.addr()}},
				Route{App: "gone", Release: 1, Upstreams: []string{closedAddr(t), closedAddr(t)}},
			)
			tr := startRouter(t, Options{Source: src, Frontend: fe})
			tr.waitRelease(t, "gone", 1)
			for i := range 40 {
				if resp, body := tr.get(t, "a.apps.test", "/"); resp.StatusCode != 200 || body != "live" {
					t.Fatalf("request %d: got %d %q", i, resp.StatusCode, body)
				}
			}
			if fe != FrontendReverseProxy {
				if n := counterValue(t, tr.Registry(), "berth_router_upstream_errors_total"); n < 1 || n > 3 {
					t.Errorf("upstream errors = %v, want the dead upstream tried once (passive health skips it after)", n)
				}
			}

			// All upstreams down: a short 503 page, quickly.
			start := time.Now()
			resp, body := tr.get(t, "gone.apps.test", "/")
			if resp.StatusCode != 503 || !strings.Contains(body, "503") {
				t.Errorf("all upstreams down: got %d %q, want the 503 page", resp.StatusCode, body)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("all upstreams down: the 503 took %s", d)
			}
		})
	}
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestNoGoroutineLeaks: after Stop, nothing the router started is left,
// including proxy connections and upgraded WebSockets still open at Stop.
func TestNoGoroutineLeaks(t *testing.T) {
	for _, fe := range frontends {
		t.Run(string(fe), func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			b := newBackend(t, "b")
			src := NewStaticSource(Route{App: "b", Release: 1, Upstreams: []string{b.addr()}})
			r, err := New(Options{Frontend: fe, HTTPAddr: "127.0.0.1:0", Source: src, AppsDomain: "apps.test", Logger: testLogger(t), CaddyLogLevel: "ERROR", StateFile: stateFileIn(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Stop(context.Background()) })
			tr := &testRouter{Router: r, addr: r.Addr(), client: newClient()}
			tr.waitRelease(t, "b", 1)
			for range 5 {
				tr.get(t, "b.apps.test", "/")
			}
			var ws []*wsConn
			if fe != FrontendReverseProxy {
				for range 3 {
					c, err := dialUpgrade(tr.addr, "b.apps.test")
					if err != nil {
						t.Fatal(err)
					}
					ws = append(ws, c)
				}
			}
			tr.client.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := r.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			for _, c := range ws {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("websocket still open after Stop: %v", err)
				}
				c.Close()
			}
			b.close()
			goleak.VerifyNone(t, append(caddyGlobals, before)...)
		})
	}
}
