package nomad

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"go.uber.org/goleak"

	"github.com/berthpaas/berth/scheduler"
	"github.com/berthpaas/berth/scheduler/nomad/nomadtest"
	"github.com/berthpaas/berth/scheduler/runtimetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// needDocker skips a test when there is no Docker engine: Nomad's docker
// driver needs one. Missing Nomad or Consul binaries fail the test instead
// (nomadtest.Start says how to get them).
func needDocker(t testing.TB) *client.Client {
	t.Helper()
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			t.Skip("no Docker engine: /var/run/docker.sock is missing and DOCKER_HOST is unset")
		}
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli.NegotiateAPIVersion(ctx)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// TestConformance runs the runtime suite against real Consul and Nomad dev
// agents. The test image is built on the local engine, which is the dev
// client's engine, so Nomad runs it without pulling (force_pull is off).
func TestConformance(t *testing.T) {
	cli := needDocker(t)
	agents := nomadtest.Start(t)
	tag := "berth-runtimetest:nomad-" + randomHex(6)
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t *testing.T) scheduler.Runtime {
			return newTestRuntime(t, agents)
		},
		Image: func(t *testing.T) string {
			runtimetest.BuildTestImage(t, tag)
			return tag
		},
		Kill: func(t *testing.T, inst scheduler.Instance) {
			killAlloc(t, cli, inst.ID)
		},
	})
}

func newTestRuntime(t testing.TB, agents *nomadtest.Agents) *Runtime {
	r, err := New(Config{NomadAddr: agents.NomadAddr, ConsulAddr: agents.ConsulAddr, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// killAlloc kills an allocation's container with SIGKILL behind Nomad's
// back; Nomad's restart policy brings it back.
func killAlloc(t *testing.T, cli *client.Client, allocID string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", nomadtest.AllocLabel+"="+allocID))})
	if err != nil {
		t.Fatalf("find the container of allocation %s: %v", allocID, err)
	}
	if len(cs) == 0 {
		t.Fatalf("allocation %s has no running container", allocID)
	}
	for _, c := range cs {
		if err := cli.ContainerKill(ctx, c.ID, "KILL"); err != nil {
			t.Fatalf("kill container %.12s of allocation %s: %v", c.ID, allocID, err)
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// testLogger shows the runtime's logs in the test output when
// BERTH_TEST_LOG=1.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
