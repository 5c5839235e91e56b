package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/berthpaas/berth/e2e/harness"
)

// berthBin is the binary built once for the whole test run.
var berthBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	berthBin, err = harness.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newCluster starts an n-server cluster (no builds, no runtime) that is
// killed when the test ends; on failure the servers' logs are printed.
func newCluster(t *testing.T, n int, raft map[string]any) *harness.Cluster {
	t.Helper()
	return startCluster(t, n, harness.Options{Raft: raft})
}

// startCluster starts an n-server cluster with opts that is killed (its
// routers and containers removed) when the test ends; on failure the
// servers' and routers' logs are printed.
func startCluster(t *testing.T, n int, opts harness.Options) *harness.Cluster {
	t.Helper()
	c, err := harness.New(berthBin, t.TempDir(), n, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			dumpLogs(t, c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func dumpLogs(t *testing.T, c *harness.Cluster) {
	for _, s := range c.Servers {
		b, err := os.ReadFile(s.DataDir + "/" + s.Name + ".log")
		if err != nil {
			continue
		}
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		t.Logf("---- %s log (tail) ----\n%s", s.Name, b)
	}
	for _, r := range c.Routers() {
		b, err := os.ReadFile(r.Log)
		if err != nil {
			continue
		}
		if len(b) > 10000 {
			b = b[len(b)-10000:]
		}
		t.Logf("---- router %s log (tail) ----\n%s", r.Name, b)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
