package docker

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// testLogger shows the runtime's logs in the test output when
// BERTH_TEST_LOG=1.
func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
