package router

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAccessLogLinesAreJSON(t *testing.T) {
	var buf bytes.Buffer
	l := newAccessLog(&buf)
	odd := "/p\"a\\t\nh\x01\xff\u00e9?q=<>"
	l.log(&logEntry{start: time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC), duration: 1500 * time.Microsecond,
		requestID: "rid", app: "web", release: 7, upstream: "127.0.0.1:1", method: "GET", host: "web.test", uri: odd,
		remote: "1.2.3.4:5", status: 200, bytes: 42})
	l.flush()
	var e map[string]any
	if err := json.Unmarshal(buf.Bytes(), &e); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	want := map[string]any{"ts": "2026-01-02T03:04:05.678Z", "request_id": "rid", "app": "web", "release": 7.0,
		"upstream": "127.0.0.1:1", "status": 200.0, "bytes": 42.0, "duration_ms": 1.5, "uri": strings.ToValidUTF8(odd, "\ufffd")}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %#v, want %#v", k, e[k], v)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the router's flusher and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
