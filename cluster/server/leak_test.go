package server

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestStopLeaksNoGoroutines: whoever starts a goroutine stops it. A server
// that served requests (including a blocking query in flight) and was
// stopped leaves nothing running.
func TestStopLeaksNoGoroutines(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		// net/http's client keeps idle connections' readers until they time out.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	}
	s, cl := startDevNoCleanup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.CreateApp(ctx, "leaky"); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Stop() // idempotent
	if err := goleak.Find(opts...); err != nil {
		// Give exiting goroutines a moment; Find already retries briefly.
		t.Fatal(err)
	}
}
