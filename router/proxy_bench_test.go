package router

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLeanProxy drives the lean frontend and proxy over loopback: a
// keep-alive client sends a small GET through the router to a tiny app
// answering "ok" with the headers Go's net/http would send. The client and
// the app are raw sockets that allocate nothing per request, so allocs/op
// is the router's own (it is steady even on a loaded machine; ns/op is
// not). The access log is on, as in production.
//
//	go test -run '^$' -bench LeanProxy -benchmem -count 6 ./router/
//
// "serial" is one connection, request after request (latency: every
// request pays the loopback round trips); "parallel" runs GOMAXPROCS×4
// connections at once. cpu-µs/op is the whole test process's user+system
// CPU per request (router, client and app); "direct" is the client
// talking to the app without the router, the floor to subtract.
func BenchmarkLeanProxy(b *testing.B) {
	up := startRawBackend(b)
	r := startRouter(b, Options{
		Source:    NewStaticSource(Route{App: "bench", Release: 1, Upstreams: []string{up}}),
		AccessLog: nopWriter{},
	})
	r.waitRelease(b, "bench", 1)
	addr := r.Addr()
	b.Run("direct/serial", func(b *testing.B) {
		c := dialBenchClient(b, up, "GET / HTTP/1.1\r\nHost: bench.apps.test\r\n\r\n")
		defer c.close()
		c.do(b)
		b.ReportAllocs()
		cpu := startCPU()
		b.ResetTimer()
		for b.Loop() {
			c.do(b)
		}
		cpu.report(b)
	})
	for _, bc := range []struct {
		name string
		req  string
	}{
		// What wrk sends.
		{"wrk", "GET / HTTP/1.1\r\nHost: bench.apps.test\r\n\r\n"},
		// A browser-like head with a request ID to pass through.
		{"browser", "GET /assets/app.css?v=3 HTTP/1.1\r\nHost: bench.apps.test\r\n" +
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
			"Accept: text/css,*/*;q=0.1\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
			"Referer: http://bench.apps.test/\r\nConnection: keep-alive\r\nX-Request-Id: 0123456789abcdef\r\n\r\n"},
	} {
		b.Run(bc.name+"/serial", func(b *testing.B) {
			c := dialBenchClient(b, addr, bc.req)
			defer c.close()
			c.do(b) // warm: the upstream connection is dialled
			b.ReportAllocs()
			cpu := startCPU()
			b.ResetTimer()
			for b.Loop() {
				c.do(b)
			}
			cpu.report(b)
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.SetParallelism(4)
			b.ReportAllocs()
			var mu sync.Mutex
			var clients []*benchClient
			defer func() {
				for _, c := range clients {
					c.close()
				}
			}()
			cpu := startCPU()
			defer cpu.report(b)
			b.RunParallel(func(pb *testing.PB) {
				c := dialBenchClient(b, addr, bc.req)
				mu.Lock()
				clients = append(clients, c)
				mu.Unlock()
				for pb.Next() {
					c.do(b)
				}
			})
		})
	}
}

// cpuMeter measures the process's CPU time (user+system) over a benchmark.
type cpuMeter struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-m.start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// benchClient is a keep-alive HTTP/1.1 client that allocates nothing per
// request: it writes a fixed request and reads a response with a
// Content-Length body.
type benchClient struct {
	nc  net.Conn
	br  *bufio.Reader
	req []byte
}

func dialBenchClient(b *testing.B, addr, req string) *benchClient {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return &benchClient{nc: nc, br: bufio.NewReaderSize(nc, 4096), req: []byte(req)}
}

func (c *benchClient) close() { c.nc.Close() }

func (c *benchClient) do(b *testing.B) {
	if _, err := c.nc.Write(c.req); err != nil {
		b.Fatal(err)
	}
	status := true
	length := -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if status {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				b.Fatalf("response %q", line)
			}
			status = false
			continue
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length = atoiBytes(bytes.TrimSpace(v))
		}
	}
	if length < 0 {
		b.Fatal("no Content-Length")
	}
	if _, err := c.br.Discard(length); err != nil {
		b.Fatal(err)
	}
}

func atoiBytes(b []byte) int {
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
	}
	return n
}

// startRawBackend is an app that answers every request with "ok" and the
// head net/http would send, without allocating per request.
func startRawBackend(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Date: " + time.Now().UTC().Format(timeFormatGMT) + "\r\n\r\nok")
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br := bufio.NewReaderSize(nc, 4096)
				for {
					// Read one head (the benchmark's requests have no body).
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := nc.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

const timeFormatGMT = "Mon, 02 Jan 2006 15:04:05 GMT"

// TestLeanProxyConnectionMemory: on the lean frontend a request's strings
// and its response's headers are views of the connection's memory, reused
// by the next request (parse.go, connScratch). Nothing of one exchange
// may show in the next: requests of different sizes and header sets go
// over one keep-alive connection to an app that answers each with
// different headers, and every response must carry exactly its own.
func TestLeanProxyConnectionMemory(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // request ID → path, as the app saw them
	app := newHandlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("X-Request-Id")] = r.URL.Path
		mu.Unlock()
		h := w.Header()
		if strings.HasPrefix(r.URL.Path, "/long") {
			h.Set("X-Long", strings.Repeat("l", 3000))
			h.Add("Set-Cookie", "a=1")
			h.Add("Set-Cookie", "b=2")
		} else {
			h.Set("X-Short", "s")
		}
		io.WriteString(w, r.URL.Path)
	})
	tr := startRouter(t, Options{Source: NewStaticSource(Route{App: "app", Release: 1, Upstreams: []string{app}})})
	tr.waitRelease(t, "app", 1)
	nc, err := net.Dial("tcp", tr.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	ids := map[string]bool{}
	for i := range 40 {
		path := fmt.Sprintf("/short/%d", i)
		if i%3 == 0 {
			path = fmt.Sprintf("/long/%d/%s", i, strings.Repeat("p", 500+i*37))
		}
		req := "GET " + path + " HTTP/1.1\r\nHost: app.apps.test\r\n"
		wantID := ""
		if i%4 == 1 {
			wantID = fmt.Sprintf("client-id-%d", i)
			req += "X-Request-Id: " + wantID + "\r\n"
		}
		if i%5 == 2 {
			req += "X-Padding: " + strings.Repeat("x", 1000+i) + "\r\n"
		}
		if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != path {
			t.Fatalf("request %d: body %q, want %q", i, body, path)
		}
		long := strings.HasPrefix(path, "/long")
		if got := resp.Header.Get("X-Long"); long != (got != "") || long && got != strings.Repeat("l", 3000) {
			t.Errorf("request %d (%s): X-Long %.20q", i, path[:6], got)
		}
		if got := resp.Header.Get("X-Short"); long == (got == "s") {
			t.Errorf("request %d (%s): X-Short %q", i, path[:6], got)
		}
		if got := resp.Header.Values("Set-Cookie"); long && (len(got) != 2 || got[0] != "a=1" || got[1] != "b=2") || !long && len(got) != 0 {
			t.Errorf("request %d: Set-Cookie %q", i, got)
		}
		id := resp.Header.Get("X-Request-Id")
		if wantID != "" && id != wantID || wantID == "" && (len(id) != 32 || ids[id]) {
			t.Errorf("request %d: X-Request-Id %q (client sent %q)", i, id, wantID)
		}
		ids[id] = true
		mu.Lock()
		p := seen[id]
		mu.Unlock()
		if p != path {
			t.Errorf("request %d: the app saw request ID %q for %.20q, want %.20q", i, id, p, path)
		}
	}
}

// newHandlerBackend is an app serving h.
func newHandlerBackend(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
