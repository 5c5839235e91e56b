package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
)

// leanFrontends are the frontends that proxy with berth's own proxy.
var leanFrontends = []Frontend{FrontendBerth, FrontendCaddy}

// appServer runs handler as app "app" behind a router.
func appServer(t *testing.T, fe Frontend, handler http.HandlerFunc, opts Options) (*testRouter, *httptest.Server) {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	opts.Source = NewStaticSource(Route{App: "app", Release: 1, Hosts: []string{"app.test"}, Upstreams: []string{srv.Listener.Addr().String()}})
	opts.Frontend = fe
	tr := startRouter(t, opts)
	tr.waitRelease(t, "app", 1)
	return tr, srv
}

func TestMessageFraming(t *testing.T) {
	for _, fe := range leanFrontends {
		t.Run(string(fe), func(t *testing.T) {
			tr, _ := appServer(t, fe, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/echo":
					body, _ := io.ReadAll(r.Body)
					w.Header().Set("X-Got-Length", fmt.Sprint(r.ContentLength))
					w.Header().Set("X-Got-TE", strings.Join(r.TransferEncoding, ","))
					w.Write(body)
				case "/duplex":
					// Answers while the body is still coming, as a
					// streaming app would; needs a full-duplex proxy.
					http.NewResponseController(w).EnableFullDuplex()
					w.(http.Flusher).Flush()
					n, _ := io.Copy(io.Discard, r.Body)
					fmt.Fprint(w, n)
				case "/headers":
					w.Header().Add("Set-Cookie", "a=1")
					w.Header().Add("Set-Cookie", "b=2")
					w.Header().Set("Connection", "X-Secret")
					w.Header().Set("X-Secret", "hop")
					w.Header().Set("Keep-Alive", "timeout=5")
					json.NewEncoder(w).Encode(r.Header)
				case "/stream":
					w.Header().Set("Trailer", "X-Sum")
					for i := range 3 {
						fmt.Fprintf(w, "part%d;", i)
						w.(http.Flusher).Flush()
					}
					w.Header().Set("X-Sum", "3")
				case "/nocontent":
					w.WriteHeader(http.StatusNoContent)
				case "/head":
					w.Header().Set("Content-Length", "1234")
				case "/status":
					w.WriteHeader(http.StatusTeapot)
					io.WriteString(w, "teapot")
				}
			}, Options{})
			c := tr.client
			do := func(req *http.Request) (*http.Response, string) {
				t.Helper()
				req.Host = "app.test"
				resp, err := c.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("%s %s: body: %v", req.Method, req.URL.Path, err)
				}
				return resp, string(b)
			}
			base := "http://" + tr.addr

			big := make([]byte, 3<<20)
			rand.Read(big)
			req, _ := http.NewRequest("POST", base+"/echo", bytes.NewReader(big))
			resp, body := do(req)
			if resp.StatusCode != 200 || body != string(big) || resp.Header.Get("X-Got-Length") != fmt.Sprint(len(big)) {
				t.Errorf("POST 3 MiB: %d, %d bytes back, length seen %s", resp.StatusCode, len(body), resp.Header.Get("X-Got-Length"))
			}

			pr, pw := io.Pipe()
			go func() {
				pw.Write(make([]byte, 1<<20))
				pw.Close()
			}()
			req, _ = http.NewRequest("POST", base+"/duplex", pr)
			if resp, body = do(req); resp.StatusCode != 200 || body != fmt.Sprint(1<<20) {
				t.Errorf("full duplex: %d %q", resp.StatusCode, body)
			}

			pr, pw = io.Pipe()
			go func() {
				for i := range 100 {
					fmt.Fprintf(pw, "chunk %d\n", i)
				}
				pw.Close()
			}()
			req, _ = http.NewRequest("PUT", base+"/echo", pr)
			resp, body = do(req)
			if resp.StatusCode != 200 || strings.Count(body, "chunk") != 100 || resp.Header.Get("X-Got-TE") != "chunked" {
				t.Errorf("chunked PUT: %d, %d chunks back, TE %q", resp.StatusCode, strings.Count(body, "chunk"), resp.Header.Get("X-Got-TE"))
			}

			req, _ = http.NewRequest("GET", base+"/headers", nil)
			req.Header.Set("Connection", "X-Hop")
			req.Header.Set("X-Hop", "1")
			req.Header.Set("Proxy-Authorization", "secret")
			req.Header.Set("X-Kept", "yes")
			resp, body = do(req)
			var seen http.Header
			json.Unmarshal([]byte(body), &seen)
			if seen.Get("X-Hop") != "" || seen.Get("Proxy-Authorization") != "" || seen.Get("X-Kept") != "yes" {
				t.Errorf("hop-by-hop request headers: backend saw %v", seen)
			}
			if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
				t.Errorf("Set-Cookie = %q, want both cookies in order", got)
			}
			if resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" {
				t.Errorf("hop-by-hop response headers leaked: %v", resp.Header)
			}

			req, _ = http.NewRequest("GET", base+"/stream", nil)
			resp, body = do(req)
			if body != "part0;part1;part2;" || resp.Trailer.Get("X-Sum") != "3" {
				t.Errorf("stream: %q trailer %v", body, resp.Trailer)
			}

			req, _ = http.NewRequest("GET", base+"/nocontent", nil)
			if resp, body = do(req); resp.StatusCode != 204 || body != "" {
				t.Errorf("204: %d %q", resp.StatusCode, body)
			}
			req, _ = http.NewRequest("HEAD", base+"/head", nil)
			if resp, body = do(req); resp.StatusCode != 200 || body != "" || resp.ContentLength != 1234 {
				t.Errorf("HEAD: %d %q length %d", resp.StatusCode, body, resp.ContentLength)
			}
			req, _ = http.NewRequest("GET", base+"/status", nil)
			if resp, body = do(req); resp.StatusCode != http.StatusTeapot || body != "teapot" {
				t.Errorf("418: %d %q", resp.StatusCode, body)
			}
			// The connection is still good after all that.
			req, _ = http.NewRequest("GET", base+"/status", nil)
			if resp, _ = do(req); resp.StatusCode != http.StatusTeapot {
				t.Errorf("after: %d", resp.StatusCode)
			}
		})
	}
}

// TestStreamingIsFlushed: server-sent events reach the client as they are
// written, not when the response ends.
func TestStreamingIsFlushed(t *testing.T) {
	for _, fe := range leanFrontends {
		t.Run(string(fe), func(t *testing.T) {
			release := make(chan struct{})
			tr, _ := appServer(t, fe, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, "data: first\n\n")
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
				io.WriteString(w, "data: second\n\n")
			}, Options{})
			defer close(release)
			req, _ := http.NewRequest("GET", "http://"+tr.addr+"/events", nil)
			req.Host = "app.test"
			resp, err := tr.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			line := make(chan string, 1)
			go func() {
				l, _ := bufio.NewReader(resp.Body).ReadString('\n')
				line <- l
			}()
			select {
			case l := <-line:
				if l != "data: first\n" {
					t.Errorf("got %q", l)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the first event did not arrive before the response ended")
			}
		})
	}
}

// TestUpstreamTimeouts: an app that does not answer gets a 504 after
// ReadTimeout, not a hang.
func TestUpstreamTimeouts(t *testing.T) {
	for _, fe := range leanFrontends {
		t.Run(string(fe), func(t *testing.T) {
			tr, _ := appServer(t, fe, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-time.After(10 * time.Second):
				case <-r.Context().Done():
				}
			}, Options{ReadTimeout: 300 * time.Millisecond})
			start := time.Now()
			resp, body := tr.get(t, "app.test", "/")
			if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "504") {
				t.Errorf("got %d %q, want the 504 page", resp.StatusCode, body)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// TestUpstreamDiesMidResponse: a response cut short by the app must reach
// the client as an error, never as a complete-looking shorter response.
func TestUpstreamDiesMidResponse(t *testing.T) {
	for _, fe := range leanFrontends {
		t.Run(string(fe), func(t *testing.T) {
			tr, _ := appServer(t, fe, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/chunked" {
					io.WriteString(w, "partial")
					w.(http.Flusher).Flush()
				} else {
					w.Header().Set("Content-Length", "100")
					io.WriteString(w, "partial")
					w.(http.Flusher).Flush()
				}
				conn, _, _ := http.NewResponseController(w).Hijack()
				conn.Close()
			}, Options{})
			for _, path := range []string{"/fixed", "/chunked"} {
				req, _ := http.NewRequest("GET", "http://"+tr.addr+path, nil)
				req.Host = "app.test"
				resp, err := tr.client.Do(req)
				if err != nil {
					continue // an error is a fine way to learn it
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil {
					t.Errorf("%s: the truncated response looked complete to the client", path)
				}
			}
		})
	}
}

// TestStaleKeepAlive: apps close idle keep-alive connections (Node after
// 5 s); the router must notice and not fail requests, with or without a body.
func TestStaleKeepAlive(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	defer srv.Close()
	src := NewStaticSource(Route{App: "app", Release: 1, Upstreams: []string{srv.Listener.Addr().String()}})
	tr := startRouter(t, Options{Source: src})
	tr.waitRelease(t, "app", 1)
	for i := range 6 {
		for _, method := range []string{"GET", "POST"} {
			req, _ := http.NewRequest(method, "http://"+tr.addr+"/", strings.NewReader("body"))
			if method == "GET" {
				req.Body, req.ContentLength = nil, 0
			}
			req.Host = "app.apps.test"
			resp, err := tr.client.Do(req)
			if err != nil {
				t.Fatalf("%s %d: %v", method, i, err)
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s %d after the app closed its idle connection: %d", method, i, resp.StatusCode)
			}
		}
		time.Sleep(time.Duration(100+i*250) * time.Millisecond)
	}
}

// TestClientLimits: oversize request heads are refused, and a client that
// sends its head too slowly (slowloris) is cut off.
func TestClientLimits(t *testing.T) {
	for _, fe := range frontends {
		t.Run(string(fe), func(t *testing.T) {
			tr, _ := appServer(t, fe, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") },
				Options{MaxHeaderBytes: 8 << 10, ReadHeaderTimeout: 300 * time.Millisecond})
			resp, _ := tr.get(t, "app.test", "/", "X-Big", strings.Repeat("x", 64<<10))
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("64 KiB header: %d, want 431", resp.StatusCode)
			}

			c, err := net.Dial("tcp", tr.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n")
			start := time.Now()
			closed := wait.For(t.Context(), "the router to drop a slow client", 5*time.Second, 50*time.Millisecond, func(context.Context) error {
				if _, err := io.WriteString(c, "X-Slow: 1\r\n"); err != nil {
					return nil
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
					return nil // closed (or answered with an error and closed)
				}
				return fmt.Errorf("still open after %s", time.Since(start))
			})
			if closed != nil {
				t.Error(closed)
			}
		})
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestForceHTTPS(t *testing.T) {
	b := newBackend(t, "a")
	src := NewStaticSource(Route{App: "a", Release: 1, ForceHTTPS: true, Upstreams: []string{b.addr()}})
	tr := startRouter(t, Options{Source: src})
	tr.waitRelease(t, "a", 1)
	resp, _ := tr.get(t, "A.apps.test:8080", "/p?q=1")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://a.apps.test/p?q=1" {
		t.Errorf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if b.requests.Load() != 0 {
		t.Error("the app saw a plain-HTTP request")
	}
}

// TestObservability: every routed request is counted per app and logged as
// one JSON line with app, release, upstream, status, duration and request ID.
func TestObservability(t *testing.T) {
	b := newBackend(t, "a")
	var logs syncBuffer
	src := NewStaticSource(Route{App: "a", Release: 12, Upstreams: []string{b.addr()}})
	tr := startRouter(t, Options{Source: src, AccessLog: &logs})
	tr.waitRelease(t, "a", 12)
	for range 3 {
		tr.get(t, "a.apps.test", "/x", "X-Request-Id", "req-42")
	}
	tr.get(t, "unknown.test", "/")
	if n := counterValue(t, tr.Registry(), "berth_router_requests_total"); n != 3 {
		t.Errorf("requests_total = %v, want 3", n)
	}
	if n := counterValue(t, tr.Registry(), "berth_router_request_duration_seconds"); n != 3 {
		t.Errorf("duration samples = %v, want 3", n)
	}
	if n := counterValue(t, tr.Registry(), "berth_router_unknown_host_requests_total"); n != 1 {
		t.Errorf("unknown host = %v, want 1", n)
	}
	rec := httptest.NewRecorder()
	tr.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `berth_router_requests_total{app="a",code="2xx"} 3`) {
		t.Errorf("metrics page lacks the per-app series:\n%s", rec.Body.String())
	}

	var line map[string]any
	err := wait.For(t.Context(), "the access log", 5*time.Second, 20*time.Millisecond, func(context.Context) error {
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "req-42") {
				return json.Unmarshal([]byte(l), &line)
			}
		}
		return fmt.Errorf("no line yet: %q", logs.String())
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{"app": "a", "release": 12.0, "upstream": b.addr(), "status": 200.0, "request_id": "req-42", "uri": "/x"} {
		if line[k] != v {
			t.Errorf("log %s = %#v, want %#v (line %v)", k, line[k], v, line)
		}
	}
	if _, ok := line["duration_ms"].(float64); !ok {
		t.Errorf("log has no duration: %v", line)
	}
}

func TestWaitForRelease(t *testing.T) {
	src := NewStaticSource(Route{App: "a", Release: 1})
	tr := startRouter(t, Options{Source: src})
	tr.waitRelease(t, "a", 1)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := tr.WaitForRelease(ctx, "a", 2); err == nil || !strings.Contains(err.Error(), "serving 1") {
		t.Errorf("err = %v, want a timeout naming the release served", err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.WaitForRelease(t.Context(), "a", 2) }()
	time.Sleep(50 * time.Millisecond)
	src.Set(Route{App: "a", Release: 2})
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Error("WaitForRelease did not return after the swap")
	}
	tr.Stop(t.Context())
	if err := tr.WaitForRelease(t.Context(), "a", 2); err != ErrNotRunning {
		t.Errorf("after Stop: %v", err)
	}
}
