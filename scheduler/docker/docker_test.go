package docker

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"go.uber.org/goleak"

	"github.com/berthpaas/berth/scheduler"
	"github.com/berthpaas/berth/scheduler/runtimetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// engine returns a client of the local engine, or skips the test.
func engine(t *testing.T) *client.Client {
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
	// Before the client is shared: it reads its version unguarded until
	// negotiated.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli.NegotiateAPIVersion(ctx)
	return cli
}

// TestConformance runs the runtime suite against the local engine. The
// cluster label is unique to the run, so the containers of other runs and
// of real clusters on the engine are neither seen nor touched.
func TestConformance(t *testing.T) {
	cli := engine(t)
	cluster := "test-" + randomSuffix() + randomSuffix()
	t.Cleanup(func() {
		removeCluster(t, cli, cluster)
		cli.Close()
	})
	tag := "berth-runtimetest:" + cluster
	runtimetest.Run(t, runtimetest.Harness{
		New: func(t *testing.T) scheduler.Runtime {
			r, err := New(Config{Docker: cli, Cluster: cluster, StopDrain: 500 * time.Millisecond, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
		Image: func(t *testing.T) string {
			runtimetest.BuildTestImage(t, tag)
			return tag
		},
		Kill: func(t *testing.T, inst scheduler.Instance) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := cli.ContainerKill(ctx, inst.ID, "KILL"); err != nil {
				t.Fatalf("kill %s: %v", inst.Name(), err)
			}
		},
	})
}

// removeCluster removes whatever a failed test left behind.
func removeCluster(t *testing.T, cli *client.Client, cluster string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelCluster+"="+cluster))})
	if err != nil {
		t.Errorf("list leftover containers: %v", err)
		return
	}
	for _, c := range cs {
		t.Logf("removing leftover container %s %v", short(c.ID), c.Names)
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Errorf("remove leftover container %s: %v", short(c.ID), err)
		}
	}
}
