package router

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

// Goroutines Caddy starts once per process and never stops; they are not
// the router's to end.
var caddyGlobals = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2.init.0.func1"), // caddy's global usage pool janitor, if any
	goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).permitNext"),
	goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Upstream).fillDynamicHost.func1.1"),
	goleak.IgnoreAnyFunction("github.com/caddyserver/caddy/v2/modules/caddytls.init.1.func1"),
	goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*Cache).maintainAssets"),
	goleak.IgnoreAnyFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
	goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, caddyGlobals...)
}

// backend is a real HTTP app behind the router that records what it saw.
type backend struct {
	name     string
	srv      *httptest.Server
	requests atomic.Int64
	active   atomic.Int64
	accepts  atomic.Int64

	mu   sync.Mutex
	last http.Header
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.accepts.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(b.close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

var closeOnce sync.Map

func (b *backend) close() {
	if _, done := closeOnce.LoadOrStore(b, true); !done {
		b.srv.Close()
	}
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.active.Add(1)
	defer b.active.Add(-1)
	b.requests.Add(1)
	b.mu.Lock()
	b.last = r.Header.Clone()
	b.last.Set("Host", r.Host)
	b.mu.Unlock()
	switch {
	case r.Header.Get("Upgrade") == "websocket":
		b.echoUpgrade(w)
		return
	case r.URL.Path == "/slow":
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	case r.URL.Path == "/echo":
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
		return
	}
	w.Header().Set("X-Backend", b.name)
	fmt.Fprint(w, b.name)
}

// echoUpgrade accepts any Upgrade and echoes bytes until the peer closes.
func (b *backend) echoUpgrade(w http.ResponseWriter) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	brw.Flush()
	io.Copy(conn, brw)
}

func (b *backend) lastHeader() http.Header {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

type testRouter struct {
	*Router
	addr   string
	client *http.Client
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// startRouter runs a router on a free port and stops it when the test ends.
func startRouter(t testing.TB, opts Options) *testRouter {
	t.Helper()
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:0"
	}
	if opts.AppsDomain == "" {
		opts.AppsDomain = "apps.test"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.CaddyLogLevel == "" {
		opts.CaddyLogLevel = "ERROR"
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	tr := &testRouter{Router: r, addr: r.Addr()}
	tr.client = newClient()
	t.Cleanup(func() {
		tr.client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil { // idempotent: a test may have stopped it
			t.Error(err)
		}
	})
	if tr.addr == "" {
		t.Fatal("router has no address")
	}
	return tr
}

// get sends a GET for host through the router.
func (tr *testRouter) get(t *testing.T, host, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+tr.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := tr.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: read body: %v", host, path, err)
	}
	return resp, string(body)
}

// waitRelease waits until the router serves release of app.
func (tr *testRouter) waitRelease(t testing.TB, app string, release uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tr.WaitForRelease(ctx, app, release); err != nil {
		t.Fatal(err)
	}
}

// wsConn is a raw upgraded connection through the router.
type wsConn struct {
	net.Conn
	br *bufio.Reader
}

func dialUpgrade(addr, host string) (*wsConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", host)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("upgrade: status %d", resp.StatusCode)
	}
	c.SetReadDeadline(time.Time{})
	return &wsConn{Conn: c, br: br}, nil
}

// roundTrip writes a line and reads the echo.
func (w *wsConn) roundTrip(msg string) error {
	w.SetDeadline(time.Now().Add(5 * time.Second))
	defer w.SetDeadline(time.Time{})
	if _, err := io.WriteString(w, msg+"\n"); err != nil {
		return err
	}
	line, err := w.br.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSuffix(line, "\n") != msg {
		return fmt.Errorf("echo: got %q want %q", line, msg)
	}
	return nil
}

func stateFileIn(t *testing.T) string { return filepath.Join(t.TempDir(), "routes.json") }

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: 100},
		Timeout:   20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// counterValue sums every series of a metric family in reg.
func counterValue(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}
