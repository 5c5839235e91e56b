package nomad

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
	"github.com/berthpaas/berth/scheduler"
	"github.com/berthpaas/berth/scheduler/nomad/nomadtest"
	"github.com/berthpaas/berth/scheduler/runtimetest"
)

// lostNodeDeadline bounds how long a lost node's instance may take to be
// healthy on another node: the server notices the node within 4–7 s
// (nomadtest's FastNodeLoss heartbeats), then Nomad places the replacement
// at once, the container starts (the image is on the engine) and Consul's
// check passes within a second or two.
const lostNodeDeadline = 60 * time.Second

// TestLostNode: when a node dies (its Nomad and Consul agents killed, its
// containers gone, nothing told), Instances stops calling its instance
// Healthy as soon as Consul notices the node, Nomad replaces the instance
// on another node by itself — no berth server acts — and Instances shows
// the replacement there, healthy in Consul, within lostNodeDeadline; the
// lost instance is not shown any more.
func TestLostNode(t *testing.T) {
	needDocker(t)
	agents := nomadtest.StartWith(t, nomadtest.Options{FastNodeLoss: true})
	node2 := agents.StartClient(t)
	tag := "berth-runtimetest:nomad-lost-" + randomHex(6)
	runtimetest.BuildTestImage(t, tag)
	r := newTestRuntime(t, agents)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	rel := scheduler.Release{
		App: "lost-" + randomHex(3), Version: 1, Image: tag, KillTimeout: 2 * time.Second,
		Env: map[string]string{"RELEASE": "v1"},
		Processes: []scheduler.Process{{Name: "web", Count: 1, Check: scheduler.Check{
			Type: scheduler.CheckHTTP, Path: "/healthz", Interval: time.Second, Timeout: 2 * time.Second}}},
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.Destroy(ctx, rel.App); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})

	// Place web.1 on node 2: the dev node takes no new allocations while
	// the release starts.
	if err := agents.SetEligible(ctx, agents.NodeID, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx, rel); err != nil {
		t.Fatal(err)
	}
	first := waitWeb(ctx, t, r, rel.App, node2.NodeName, 2*time.Minute)
	if err := agents.SetEligible(ctx, agents.NodeID, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("web.1 is %.8s on %s at %s", first.ID, first.Node, first.Addr)

	killed := time.Now()
	node2.Kill(t)

	// Follow the facts: the node goes down, the replacement appears, runs
	// and passes its check.
	var out, down, placed, running time.Duration
	var got scheduler.Instance
	err := wait.For(ctx, "web.1 healthy on "+agents.NodeName, lostNodeDeadline, 100*time.Millisecond, func(ctx context.Context) error {
		if down == 0 {
			if st, err := agents.NodeStatus(ctx, node2.NodeID); err == nil && st == "down" {
				down = time.Since(killed)
			}
		}
		is, err := r.Instances(ctx, rel.App)
		if err != nil {
			return err
		}
		if len(is) != 1 {
			return fmt.Errorf("%d instances: %+v", len(is), is)
		}
		in := is[0]
		if in.ID == first.ID {
			if out == 0 && !in.Healthy {
				// Consul saw the node's agent fail (serfHealth).
				out = time.Since(killed)
			}
			return fmt.Errorf("still the lost instance: %+v", in)
		}
		if placed == 0 {
			placed = time.Since(killed)
		}
		if running == 0 && in.State == scheduler.StateRunning {
			running = time.Since(killed)
		}
		if in.Node != agents.NodeName || in.State != scheduler.StateRunning || !in.Healthy {
			return fmt.Errorf("replacement not healthy on %s yet: %+v", agents.NodeName, in)
		}
		got = in
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	healthy := time.Since(killed)
	t.Logf("after the kill: lost instance unhealthy %.1fs, node down %.1fs, replacement shown %.1fs, running %.1fs, healthy %.1fs",
		out.Seconds(), down.Seconds(), placed.Seconds(), running.Seconds(), healthy.Seconds())
	// Before Nomad replaced it, the lost instance was already out: its
	// node's Consul agent stopped answering (serfHealth critical, within
	// a second with the dev Consul agent's fast gossip), which routers
	// reading Consul's ?passing see too.
	if out == 0 || out >= placed {
		t.Errorf("the lost instance was Healthy until it was replaced (%.1fs): a failing node check must count", placed.Seconds())
	}
	if got.Process != "web" || got.Index != 1 || got.Release != rel.Version || got.Addr == "" {
		t.Errorf("replacement: %+v, want web.1 of v1 with an address", got)
	}
	if down == 0 {
		// The replacement is the servers' answer to the missed heartbeats.
		if st, err := agents.NodeStatus(ctx, node2.NodeID); err != nil || st != "down" {
			t.Errorf("node 2 status %q (%v), want down", st, err)
		}
	}
	// It serves, from outside.
	resp, err := http.Get("http://" + got.Addr + "/")
	if err != nil {
		t.Fatalf("GET the replacement: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body[:min(len(body), 5)]) != "ok v1" {
		t.Errorf("replacement answers %s %q", resp.Status, body)
	}
}

// waitWeb waits until app's web.1 is Healthy on node and returns it.
func waitWeb(ctx context.Context, t *testing.T, r *Runtime, app, node string, timeout time.Duration) scheduler.Instance {
	t.Helper()
	var got scheduler.Instance
	err := wait.For(ctx, "web.1 healthy on "+node, timeout, 250*time.Millisecond, func(ctx context.Context) error {
		is, err := r.Instances(ctx, app)
		if err != nil {
			return err
		}
		for _, in := range is {
			if in.Process == "web" && in.Index == 1 && in.Healthy {
				if in.Node != node {
					return fmt.Errorf("web.1 is on %s, want %s: %+v", in.Node, node, in)
				}
				got = in
				return nil
			}
		}
		return fmt.Errorf("not healthy yet: %+v", is)
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
