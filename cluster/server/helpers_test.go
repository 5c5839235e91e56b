package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/internal/ports"
)

// testLogger discards logs unless BERTH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startDev starts a real single-server cluster (real raft over TCP on
// loopback, real HTTP API) in dev mode and returns it with a root-token
// client. The server stops when the test ends.
func startDev(t *testing.T) (*Server, *api.Client) {
	t.Helper()
	s, cl := startDevNoCleanup(t)
	t.Cleanup(s.Stop)
	return s, cl
}

// startDevNoCleanup is startDev for tests that stop the server themselves.
func startDevNoCleanup(t *testing.T) (*Server, *api.Client) {
	t.Helper()
	pa := ports.New()
	apiAddr, err := pa.Addr()
	if err != nil {
		t.Fatal(err)
	}
	raftAddr, err := pa.Addr()
	if err != nil {
		t.Fatal(err)
	}
	// Builds have their own end-to-end tests (e2e/push_test.go).
	cfg := Config{Dev: true, Name: "dev1", DataDir: t.TempDir(), Bind: apiAddr, RaftBind: raftAddr, Build: BuildConfig{Disabled: true}, Runtime: "none",
		Raft: RaftConfig{HeartbeatTimeout: Duration(200 * time.Millisecond), ElectionTimeout: Duration(200 * time.Millisecond), LeaderLeaseTimeout: Duration(100 * time.Millisecond)}}
	s, err := New(cfg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.DevRootToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, api.NewClient(s.APIAddr(), tok, nil)
}
