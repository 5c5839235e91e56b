package gitreceive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
	"go.uber.org/goleak"
)

// TestStopEndsPushesAndLeaksNothing: Stop kills a push whose deploy is
// running, cancels the deploy, waits for everything it started, and can be
// called again.
func TestStopEndsPushesAndLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newTestEnv(t)
	e.pipe.block = make(chan struct{})
	defer close(e.pipe.block)
	dir, _ := e.workRepo("w", "web", map[string]string{"a": "1"})

	pushed := make(chan result, 1)
	go func() { pushed <- e.git(dir, e.key, "push", "berth", "main") }()
	select {
	case <-e.pipe.started:
	case r := <-pushed:
		t.Fatalf("push ended before its deploy started: %v", r)
	case <-time.After(60 * time.Second):
		t.Fatal("deploy did not start")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	select {
	case cause := <-e.pipe.canceled:
		t.Logf("deploy canceled: %v", cause)
	default:
		t.Error("Stop returned while the deploy was still running")
	}
	if r := <-pushed; r.err == nil {
		t.Errorf("push succeeded across Stop: %v", r)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != "" {
		t.Errorf("main = %q after Stop killed the push", got)
	}
	if err := wait.For(ctx, "git processes to exit", 10*time.Second, 50*time.Millisecond, func(context.Context) error {
		if ps := processesUsing(e.reposDir); len(ps) > 0 {
			return fmt.Errorf("still running: %q", ps)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if err := e.srv.Start(ctx); err == nil {
		t.Error("Start after Stop succeeded")
	}
}
