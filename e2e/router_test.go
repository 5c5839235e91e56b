package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
	"github.com/berthpaas/berth/internal/wait"
)

// viaRouter sends GET path with Host host to the router and returns the
// status and body.
func viaRouter(ctx context.Context, hc *http.Client, router, host, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+router+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitRouted waits until the router answers want for host.
func waitRouted(t *testing.T, router, host, want string) {
	t.Helper()
	err := wait.For(context.Background(), fmt.Sprintf("router to answer %q for %s", want, host), 30*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
		code, body, err := viaRouter(ctx, http.DefaultClient, router, host, "/")
		if err != nil {
			return err
		}
		if code != 200 || body != want {
			return fmt.Errorf("got %d %q", code, body)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// loadResult counts what keep-alive clients saw.
type loadResult struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstSeen  map[string]time.Time // body → when a client first got it
	errs       []string
}

// keepAliveLoad runs n keep-alive clients against host through the router
// until ctx ends.
func keepAliveLoad(ctx context.Context, n int, router, host string) (*loadResult, func()) {
	res := &loadResult{firstSeen: map[string]time.Time{}}
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, body, err := viaRouter(context.Background(), hc, router, host, "/")
				if err == nil && code == 200 {
					res.ok.Add(1)
					res.mu.Lock()
					if _, ok := res.firstSeen[body]; !ok {
						res.firstSeen[body] = time.Now()
					}
					res.mu.Unlock()
					continue
				}
				res.failed.Add(1)
				res.mu.Lock()
				if len(res.errs) < 10 {
					res.errs = append(res.errs, fmt.Sprintf("%d %q %v", code, body, err))
				}
				res.mu.Unlock()
			}
		}()
	}
	return res, func() { wg.Wait(); tr.CloseIdleConnections() }
}

// TestRouterServesAppsThroughDeploys runs a real `berth router` against a
// server on the docker runtime: apps answer on APP.<apps domain> and their
// custom domains, domain conflicts are refused, 50 keep-alive clients see
// no failed request through 20 full deploys in a row, and the router keeps
// serving — and starts — while the control plane is down.
func TestRouterServesAppsThroughDeploys(t *testing.T) {
	requireDocker(t)
	c := startCluster(t, 1, harness.Options{Builds: true, Stack: testStack, Runtime: "docker",
		AppsDomain: "apps.test"})
	ctx := ctxT(t, 15*time.Minute)
	cl := c.Client(0)
	cli := newCLI(t, c.Servers[0].APIAddr, c.RootToken)
	tok, err := cl.CreateToken(ctx, api.TokenCreateRequest{Name: "edge", Role: api.RoleRouter})
	if err != nil {
		t.Fatal(err)
	}
	// A router token can read routes and nothing else.
	routerCl := api.NewClient(c.Servers[0].APIAddr, tok.Secret, nil)
	if _, err := routerCl.CreateApp(ctx, "sneaky"); !api.IsCode(err, api.CodeForbidden) {
		t.Fatalf("router token creating an app: %v, want forbidden", err)
	}
	if apps, _, err := routerCl.Apps(ctx, nil); err != nil || len(apps) != 0 {
		t.Fatalf("router token sees apps %v (%v), want none", apps, err)
	}
	if _, _, err := cl.Routes(ctx, nil); err != nil {
		t.Fatalf("admin reads routes: %v", err)
	}
	rt, err := c.StartRouter("edge", 0, tok.Secret)
	if err != nil {
		t.Fatal(err)
	}
	tags := buildTinyImages(t, "berth-e2e/router-"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), 1)
	for _, app := range []string{"blue", "other"} {
		if _, err := cl.CreateApp(ctx, app); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.UpdateConfig(ctx, app, api.ConfigUpdateRequest{Set: map[string]string{"BODY": app + "-1"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.DeployImage(ctx, app, api.ImageDeployRequest{Image: tags[0]}); err != nil {
			t.Fatal(err)
		}
	}
	waitRouted(t, rt.HTTPAddr, "blue.apps.test", "blue-1")
	waitRouted(t, rt.HTTPAddr, "other.apps.test", "other-1")

	t.Run("domains", func(t *testing.T) {
		cli.ok("domains", "add", "-a", "blue", "WWW.Example.test")
		cli.ok("domains", "add", "-a", "blue", "*.wild.test")
		waitRouted(t, rt.HTTPAddr, "www.example.test", "blue-1")
		waitRouted(t, rt.HTTPAddr, "a.wild.test", "blue-1")
		if out := cli.ok("domains", "-a", "blue"); !strings.Contains(out, "www.example.test") || !strings.Contains(out, "http://blue.apps.test/") {
			t.Fatalf("berth domains:\n%s", out)
		}
		cli.fails("belongs to app blue", "domains", "add", "-a", "other", "www.example.test")
		cli.fails("invalid domain", "domains", "add", "-a", "other", "http://x.test/")
		cli.fails("invalid domain", "domains", "add", "-a", "other", "a.*.test")
		cli.fails("invalid domain", "domains", "add", "-a", "other", "10.0.0.1")
		cli.fails("apps domain", "domains", "add", "-a", "other", "blue.apps.test")
		code, body, err := viaRouter(ctx, http.DefaultClient, rt.HTTPAddr, "nobody.test", "/")
		if err != nil || code != 404 {
			t.Fatalf("unknown host: %d %q %v, want 404", code, body, err)
		}
		cli.ok("domains", "remove", "-a", "blue", "www.example.test")
		err = wait.For(ctx, "removed domain to stop answering", 10*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
			if code, _, err := viaRouter(ctx, http.DefaultClient, rt.HTTPAddr, "www.example.test", "/"); err != nil || code != 404 {
				return fmt.Errorf("code %d err %v", code, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		cli.ok("domains", "add", "-a", "other", "www.example.test")
		waitRouted(t, rt.HTTPAddr, "www.example.test", "other-1")
	})

	t.Run("20 deploys under load", func(t *testing.T) {
		lctx, stop := context.WithCancel(ctx)
		res, wait := keepAliveLoad(lctx, 50, rt.HTTPAddr, "blue.apps.test")
		otherRes, otherWait := keepAliveLoad(lctx, 4, rt.HTTPAddr, "other.apps.test")
		var switchLatency []time.Duration
		start := time.Now()
		for n := 2; n <= 21; n++ {
			body := fmt.Sprintf("blue-%d", n)
			if _, err := cl.UpdateConfig(ctx, "blue", api.ConfigUpdateRequest{Set: map[string]string{"BODY": body}}); err != nil {
				stop()
				wait()
				otherWait()
				t.Fatal(err)
			}
			dep := waitDeploy(t, cl, "blue", uint64(n), "done")
			var cutover time.Time
			for _, s := range dep.Steps {
				if s.State == "cutover" {
					cutover = s.At
				}
			}
			res.mu.Lock()
			seen, ok := res.firstSeen[body]
			res.mu.Unlock()
			if ok && !cutover.IsZero() {
				switchLatency = append(switchLatency, seen.Sub(cutover))
			}
		}
		elapsed := time.Since(start)
		stop()
		wait()
		otherWait()
		t.Logf("20 deploys in %s: %d requests ok, %d failed; other app %d ok, %d failed",
			elapsed.Round(time.Millisecond), res.ok.Load(), res.failed.Load(), otherRes.ok.Load(), otherRes.failed.Load())
		if len(switchLatency) > 0 {
			slices.Sort(switchLatency)
			t.Logf("cutover recorded → first response from the new release: p50 %s, max %s (n=%d)",
				switchLatency[len(switchLatency)/2], switchLatency[len(switchLatency)-1], len(switchLatency))
		}
		if f := res.failed.Load() + otherRes.failed.Load(); f != 0 {
			t.Fatalf("%d failed requests during deploys; first: %v %v", f, res.errs, otherRes.errs)
		}
		if res.ok.Load() < 1000 {
			t.Fatalf("only %d requests went through: the load did not run", res.ok.Load())
		}
		if _, ok := res.firstSeen["blue-21"]; !ok {
			t.Fatal("no client saw the last release")
		}
	})

	t.Run("routers report what they serve", func(t *testing.T) {
		rs, _, err := cl.Routers(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tbl, _, err := cl.Routes(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].Name != "edge" || rs[0].Applied < tbl.Index {
			t.Fatalf("routers %+v, routes index %d", rs, tbl.Index)
		}
	})

	t.Run("berth logs shows the router's lines", func(t *testing.T) {
		err := wait.For(ctx, "router lines in berth logs", 15*time.Second, 300*time.Millisecond, func(context.Context) error {
			out := cli.ok("logs", "-a", "blue", "-p", "router", "-n", "5")
			if !strings.Contains(out, "router: at=info method=GET") || !strings.Contains(out, "host=blue.apps.test") || !strings.Contains(out, "status=200") {
				return fmt.Errorf("berth logs -p router:\n%s", out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if out := cli.ok("logs", "-a", "blue", "-n", "20"); !strings.Contains(out, "router: ") {
			t.Fatalf("berth logs without -p lacks the router's lines:\n%s", out)
		}
	})

	t.Run("static stability", func(t *testing.T) {
		c.Stop(0)
		waitRouted(t, rt.HTTPAddr, "blue.apps.test", "blue-21")
		// A router that starts while the control plane is down serves the
		// table it kept on disk.
		rt.Kill()
		if err := rt.Start(); err != nil {
			t.Fatal(err)
		}
		waitRouted(t, rt.HTTPAddr, "blue.apps.test", "blue-21")
		waitRouted(t, rt.HTTPAddr, "www.example.test", "other-1")
	})
}
