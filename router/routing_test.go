package router

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

var frontends = []Frontend{FrontendBerth, FrontendCaddy, FrontendReverseProxy}

// TestRouting runs the request-handling contract against every frontend.
func TestRouting(t *testing.T) {
	for _, fe := range frontends {
		t.Run(string(fe), func(t *testing.T) { testRouting(t, fe) })
	}
}

func testRouting(t *testing.T, fe Frontend) {
	a, b, w := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "w")
	src := NewStaticSource(
		Route{App: "a", Release: 1, Hosts: []string{"a.example.com"}, Upstreams: []string{a.addr()}},
		Route{App: "b", Release: 1, Upstreams: []string{b.addr()}},
		Route{App: "w", Release: 3, Hosts: []string{"*.wild.test"}, Upstreams: []string{w.addr()}},
		Route{App: "empty", Release: 1, Hosts: []string{"empty.test"}},
	)
	tr := startRouter(t, Options{Source: src, Frontend: fe})
	tr.waitRelease(t, "w", 3)

	t.Run("host routing", func(t *testing.T) {
		for host, want := range map[string]string{
			"a.example.com": "a", "A.Example.COM:80": "a", "a.apps.test": "a",
			"b.apps.test": "b", "x.wild.test": "w", "Y.wild.test.": "w",
		} {
			resp, body := tr.get(t, host, "/")
			if resp.StatusCode != 200 || body != want {
				t.Errorf("Host %s: got %d %q, want 200 %q", host, resp.StatusCode, body, want)
			}
		}
	})

	t.Run("unknown host is a 404 page and contacts no upstream", func(t *testing.T) {
		before := a.requests.Load() + b.requests.Load() + w.requests.Load()
		for _, host := range []string{"nope.test", "wild.test", "a.b.wild.test", "apps.test", "127.0.0.1"} {
			resp, body := tr.get(t, host, "/")
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "No app is configured") {
				t.Errorf("Host %s: got %d %q, want the 404 page", host, resp.StatusCode, body)
			}
		}
		if after := a.requests.Load() + b.requests.Load() + w.requests.Load(); after != before {
			t.Errorf("backends saw %d requests for unknown hosts", after-before)
		}
	})

	t.Run("app without upstreams is a fast 503", func(t *testing.T) {
		start := time.Now()
		resp, body := tr.get(t, "empty.test", "/")
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "503") {
			t.Errorf("got %d %q, want the 503 page", resp.StatusCode, body)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("503 took %s", d)
		}
	})

	t.Run("X-Request-ID generated and preserved", func(t *testing.T) {
		resp, _ := tr.get(t, "b.apps.test", "/")
		got := b.lastHeader().Get("X-Request-Id")
		if len(got) < 16 {
			t.Errorf("backend got X-Request-Id %q, want a generated one", got)
		}
		if resp.Header.Get("X-Request-Id") != got {
			t.Errorf("client got X-Request-Id %q, backend %q", resp.Header.Get("X-Request-Id"), got)
		}
		tr.get(t, "b.apps.test", "/", "X-Request-Id", "abc-123")
		if got := b.lastHeader().Get("X-Request-Id"); got != "abc-123" {
			t.Errorf("backend got X-Request-Id %q, want the client's abc-123", got)
		}
	})

	t.Run("X-Forwarded headers", func(t *testing.T) {
		tr.get(t, "a.example.com", "/", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil.test")
		h := a.lastHeader()
		if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For = %q, want 127.0.0.1 (an untrusted client's value replaced)", got)
		}
		if got := h.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("X-Forwarded-Proto = %q, want http", got)
		}
		if got := h.Get("X-Forwarded-Host"); got != "a.example.com" {
			t.Errorf("X-Forwarded-Host = %q, want a.example.com", got)
		}
		if got := h.Get("Host"); got != "a.example.com" {
			t.Errorf("Host = %q, want the client's a.example.com", got)
		}
	})

	t.Run("health endpoint", func(t *testing.T) {
		resp, body := tr.get(t, "anything.test", HealthPath)
		var h health
		decodeJSON(t, body, &h)
		if resp.StatusCode != 200 || h.Status != "ok" || h.Routes != 4 || !h.SourceLive {
			t.Errorf("health: %d %+v", resp.StatusCode, h)
		}
	})
}
