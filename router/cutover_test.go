package router

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// TestCutoverUnderLoad is the promise of a deploy: 50 keep-alive clients
// hammer app a while its upstreams move from backend set N to N+1 a hundred
// times, each swap through the Source, each old set closed right after it
// drains. Not one request may fail. Meanwhile 50 WebSockets to app b and a
// long request to b stay up, and Caddy's config is never reloaded.
func TestCutoverUnderLoad(t *testing.T) {
	for _, fe := range []Frontend{FrontendBerth, FrontendCaddy} {
		t.Run(string(fe), func(t *testing.T) { testCutoverUnderLoad(t, fe) })
	}
}

func testCutoverUnderLoad(t *testing.T, fe Frontend) {
	const (
		clients = 50
		sockets = 50
		swaps   = 100
	)
	release := 0
	newSet := func() ([]*backend, Route) {
		release++
		set := []*backend{newBackend(t, fmt.Sprintf("a-%d-0", release)), newBackend(t, fmt.Sprintf("a-%d-1", release))}
		return set, Route{App: "a", Release: uint64(release), Upstreams: []string{set[0].addr(), set[1].addr()}}
	}
	b := newBackend(t, "b")
	routeB := Route{App: "b", Release: 7, Upstreams: []string{b.addr()}}
	set, routeA := newSet()
	src := NewStaticSource(routeA, routeB)
	tr := startRouter(t, Options{Source: src, Frontend: fe, StateFile: stateFileIn(t)})
	tr.waitRelease(t, "a", 1)
	tr.waitRelease(t, "b", 7)

	appBefore := tr.inst.app.Load()
	cfgBefore := caddy.ActiveContext().Context

	// 50 WebSockets to b.
	var conns []*wsConn
	for i := range sockets {
		c, err := dialUpgrade(tr.addr, "b.apps.test")
		if err != nil {
			t.Fatalf("websocket %d: %v", i, err)
		}
		defer c.Close()
		conns = append(conns, c)
	}

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	fail := func(format string, args ...any) {
		failed.Add(1)
		errMu.Lock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
		errMu.Unlock()
	}

	// A long request to b that must survive every swap of a.
	longDone := make(chan error, 1)
	go func() {
		resp, body := getOnce(tr.addr, "b.apps.test", "/slow?d=3s")
		if resp == nil || resp.StatusCode != 200 || body != "b" {
			longDone <- fmt.Errorf("long request: %v %q", resp, body)
			return
		}
		longDone <- nil
	}()

	// 50 keep-alive clients on a.
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", "http://"+tr.addr+"/", nil)
				req.Host = "a.apps.test"
				resp, err := client.Do(req)
				if err != nil {
					fail("client %d: %v", i, err)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "a-") {
					fail("client %d: %d %q %v", i, resp.StatusCode, body, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}

	// The WebSockets keep talking during the swaps.
	var wsRounds atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			for i, c := range conns {
				if err := c.roundTrip(fmt.Sprintf("msg-%d-%d", i, n)); err != nil {
					fail("websocket %d: %v", i, err)
				}
			}
			wsRounds.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// 100 cutovers, each through the source; the old set closes right
	// after it drains (httptest's Close waits for requests in flight).
	time.Sleep(200 * time.Millisecond)
	var closers sync.WaitGroup
	for range swaps {
		next, route := newSet()
		src.Set(route, routeB)
		tr.waitRelease(t, "a", route.Release)
		old := set
		set = next
		closers.Add(1)
		go func() {
			defer closers.Done()
			for _, b := range old {
				b.close()
			}
		}()
		time.Sleep(20 * time.Millisecond)
	}
	closers.Wait()
	time.Sleep(200 * time.Millisecond)
	stop()
	wg.Wait()

	if err := <-longDone; err != nil {
		t.Error(err)
	}
	for i, c := range conns {
		if err := c.roundTrip("still-there"); err != nil {
			t.Errorf("websocket %d after the swaps: %v", i, err)
		}
	}
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during %d cutovers; first: %s", n, n+ok.Load(), swaps, strings.Join(errs, "; "))
	}
	if ok.Load() < 1000 {
		t.Errorf("only %d requests succeeded: the load was too light to mean anything", ok.Load())
	}
	if wsRounds.Load() < 3 {
		t.Errorf("websockets made only %d rounds", wsRounds.Load())
	}
	if tr.inst.app.Load() != appBefore || caddy.ActiveContext().Context != cfgBefore {
		t.Error("Caddy's config was reloaded during the swaps")
	}
	t.Logf("%d requests, %d cutovers, %d websocket rounds, 0 failures", ok.Load(), swaps, wsRounds.Load())
}

// getOnce is a one-off GET on a fresh connection.
func getOnce(addr, host, path string) (*http.Response, string) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}
