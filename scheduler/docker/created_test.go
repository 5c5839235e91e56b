package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/berthpaas/berth/internal/wait"
	"github.com/berthpaas/berth/scheduler"
	"github.com/berthpaas/berth/scheduler/runtimetest"
)

// TestStartCreatedByDeadServer: a server created an instance's container
// and died before starting it. The next Start (a new leader's) starts it
// at once: web.1 is healthy within seconds, not after the engine timeout
// (30 s) the old code waited before replacing it.
func TestStartCreatedByDeadServer(t *testing.T) {
	cli := engine(t)
	cluster := "test-" + randomSuffix() + randomSuffix()
	t.Cleanup(func() {
		removeCluster(t, cli, cluster)
		cli.Close()
	})
	tag := "berth-runtimetest:" + cluster
	runtimetest.BuildTestImage(t, tag)
	newRuntime := func() *Runtime {
		r, err := New(Config{Docker: cli, Cluster: cluster, StopDrain: 100 * time.Millisecond, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	web := scheduler.Process{Name: "web", Count: 1, Check: scheduler.Check{
		Type: scheduler.CheckHTTP, Path: "/healthz", Interval: 200 * time.Millisecond, Timeout: time.Second}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rel := scheduler.Release{App: "created", Version: 1, Image: tag, KillTimeout: time.Second,
		Processes: []scheduler.Process{web}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := newRuntime().Destroy(ctx, rel.App); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	// The dead server's work: created, never started.
	dead := newRuntime()
	id, err := dead.create(ctx, dead.cfg.instanceSpec(rel, web, 1, randomSuffix()))
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()

	r := newRuntime()
	began := time.Now()
	if err := r.Start(ctx, rel); err != nil {
		t.Fatal(err)
	}
	var got scheduler.Instance
	err = wait.For(ctx, "web.1 healthy", 10*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
		is, err := r.Instances(ctx, rel.App)
		if err != nil {
			return err
		}
		for _, in := range is {
			if in.Name() == "web.1" && in.Healthy {
				got = in
				return nil
			}
		}
		return fmt.Errorf("instances %+v", is)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("web.1 healthy %.2fs after Start", time.Since(began).Seconds())
	if got.ID != id {
		t.Errorf("web.1 is %s, not the dead server's container %s, which Start should have started", short(got.ID), short(id))
	}
}

// refusingDocker refuses to start containers.
type refusingDocker struct{ fakeDocker }

func (f *refusingDocker) ContainerStart(context.Context, string, container.StartOptions) error {
	return errors.New(`failed to create shim task: exec: "/x": no such file or directory`)
}

// TestStartCreatedRefused: a created container the engine refuses to start
// is not live any more, so the same Start replaces it.
func TestStartCreatedRefused(t *testing.T) {
	r := fakeRuntime(&fakeDocker{})
	r.docker = &refusingDocker{}
	t0 := &inst{id: "c1", meta: meta{App: "a", Release: 1, Process: "web", Index: 1}, created: time.Now(),
		state: container.StateCreated, kick: make(chan struct{}, 1)}
	if !t0.live() {
		t.Fatal("a fresh created container is not live before Start")
	}
	if err := r.startCreated(context.Background(), []*inst{t0}); err != nil {
		t.Fatal(err)
	}
	if t0.live() || !t0.failedStart() || !strings.Contains(t0.engineErr, "no such file") {
		t.Fatalf("after a refused start: live %v, failed %v, engine error %q", t0.live(), t0.failedStart(), t0.engineErr)
	}
	p := planFormation(scheduler.Release{App: "a", Version: 1, Processes: []scheduler.Process{{Name: "web", Count: 1}}}, r.haves([]*inst{t0}))
	if len(p.Remove) != 1 || len(p.Create) != 1 {
		t.Fatalf("plan %+v, want the refused container removed and web.1 created", p)
	}
}
