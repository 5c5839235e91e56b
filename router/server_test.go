package router

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawExchange writes raw bytes to the lean frontend and reads n responses.
func rawExchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", len(out), err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", len(out), err)
		}
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		out = append(out, resp)
	}
	return out
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestLeanFrontendProtocol(t *testing.T) {
	b := newBackend(t, "a")
	src := NewStaticSource(Route{App: "a", Release: 1, Upstreams: []string{b.addr()}})
	tr := startRouter(t, Options{Source: src})
	tr.waitRelease(t, "a", 1)

	t.Run("pipelined requests answered in order", func(t *testing.T) {
		rs := rawExchange(t, tr.addr, "GET / HTTP/1.1\r\nHost: a.apps.test\r\n\r\nGET /echo HTTP/1.1\r\nHost: a.apps.test\r\nContent-Length: 5\r\n\r\nhello"+
			"GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n", 3)
		if bodyOf(rs[0]) != "a" || bodyOf(rs[1]) != "hello" || rs[2].StatusCode != 404 {
			t.Errorf("got %d %d %d", rs[0].StatusCode, rs[1].StatusCode, rs[2].StatusCode)
		}
	})
	t.Run("HTTP/1.0", func(t *testing.T) {
		rs := rawExchange(t, tr.addr, "GET / HTTP/1.0\r\nHost: a.apps.test\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\nHost: a.apps.test\r\n\r\n", 2)
		if bodyOf(rs[0]) != "a" || rs[0].Close || bodyOf(rs[1]) != "a" || !rs[1].Close {
			t.Errorf("keep-alive then close: %v %v", rs[0].Close, rs[1].Close)
		}
	})
	t.Run("Expect 100-continue", func(t *testing.T) {
		c, err := net.Dial("tcp", tr.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: a.apps.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		if !strings.HasPrefix(line, "HTTP/1.1 100") {
			t.Fatalf("got %q, want 100 Continue before the body is sent", line)
		}
		br.ReadString('\n')
		io.WriteString(c, "ping")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || bodyOf(resp) != "ping" {
			t.Fatalf("got %v %v", resp, err)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for _, raw := range []string{
			"GET / HTTP/1.1\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
			"\x16\x03\x01garbage\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: a.apps.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		} {
			if rs := rawExchange(t, tr.addr, raw, 1); rs[0].StatusCode != 400 || !rs[0].Close {
				t.Errorf("%q: got %d close=%v, want 400 and close", raw, rs[0].StatusCode, rs[0].Close)
			}
		}
	})
}

// TestClientHangUpCancelsUpstream: when a client gives up on a slow
// request, the app's request is cancelled too instead of running on.
func TestClientHangUpCancelsUpstream(t *testing.T) {
	for _, fe := range leanFrontends {
		t.Run(string(fe), func(t *testing.T) {
			var cancelled atomic.Bool
			started := make(chan struct{}, 1)
			tr, _ := appServer(t, fe, func(w http.ResponseWriter, r *http.Request) {
				started <- struct{}{}
				select {
				case <-r.Context().Done():
					cancelled.Store(true)
				case <-time.After(10 * time.Second):
				}
			}, Options{})
			c, err := net.Dial("tcp", tr.addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
			<-started
			time.Sleep(100 * time.Millisecond)
			c.Close()
			deadline := time.Now().Add(5 * time.Second)
			for !cancelled.Load() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !cancelled.Load() {
				t.Error("the app's request was not cancelled after the client hung up")
			}
		})
	}
}

// TestGracefulStop: Stop lets a request in flight finish.
func TestGracefulStop(t *testing.T) {
	for _, fe := range leanFrontends {
		t.Run(string(fe), func(t *testing.T) {
			b := newBackend(t, "a")
			src := NewStaticSource(Route{App: "a", Release: 1, Upstreams: []string{b.addr()}})
			tr := startRouter(t, Options{Source: src, Frontend: fe, GracePeriod: 5 * time.Second})
			tr.waitRelease(t, "a", 1)
			done := make(chan string, 1)
			go func() {
				resp, body := getOnce(tr.addr, "a.apps.test", "/slow?d=700ms")
				if resp == nil {
					done <- "error: " + body
					return
				}
				done <- body
			}()
			for b.active.Load() == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tr.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if got := <-done; got != "a" {
				t.Errorf("request in flight during Stop: %q", got)
			}
		})
	}
}
