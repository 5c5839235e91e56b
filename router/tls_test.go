package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/ports"
	"github.com/berthpaas/berth/internal/wait"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

func TestCertificateAllowed(t *testing.T) {
	table, err := NewTable([]Route{
		{App: "web", Hosts: []string{"shop.example.com", "*.wild.example.com"}},
		{App: "api"},
	}, "apps.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"shop.example.com":       true,
		"SHOP.example.com":       true,
		"shop.example.com.":      true,
		"a.wild.example.com":     true,  // one label under the wildcard
		"wild.example.com":       false, // the wildcard's parent is not registered
		"a.b.wild.example.com":   false, // two labels under it
		"*.wild.example.com":     false,
		"web.apps.example.com":   true,
		"api.apps.example.com":   true,
		"nope.apps.example.com":  false, // no such app
		"apps.example.com":       false,
		"evil.example.com":       false,
		"example.com":            false,
		"127.0.0.1":              false,
		"":                       false,
		"shop.example.com:443":   false,
		"x..shop.example.com":    false,
		"a.wild.example.com/foo": false,
	} {
		if got := certificateAllowed(table, name); got != want {
			t.Errorf("certificateAllowed(%q) = %v, want %v", name, got, want)
		}
	}
}

// acmeEnv is an ACME CA (Pebble) whose VA reaches the router's plain-HTTP
// port, and a DNS server telling it where names live.
type acmeEnv struct {
	dns      *testDNS
	pebble   *testPebble
	httpPort int
}

func newACMEEnv(t *testing.T) *acmeEnv {
	t.Helper()
	addr, err := ports.New().Addr()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	d := startDNS(t)
	return &acmeEnv{dns: d, pebble: startPebble(t, port, 1, d.Addr), httpPort: port}
}

// options are a router's TLS options: HTTP on ip:httpPort (where Pebble
// validates), HTTPS on a free port, certificates in storage.
func (e *acmeEnv) options(ip string, src Source, storage certmagic.Storage) Options {
	return Options{
		HTTPAddr:                net.JoinHostPort(ip, strconv.Itoa(e.httpPort)),
		HTTPSAddr:               net.JoinHostPort(ip, "0"),
		Source:                  src,
		ACMECA:                  e.pebble.Directory,
		ACMETrustedRootsFiles:   []string{e.pebble.RootsFile},
		ACMEEmail:               "ops@example.com",
		DisableTLSALPNChallenge: true, // validation must go through the router's HTTP port
		CertStorage:             storage,
	}
}

// httpsGet sends GET https://host/path to the router at addr, verifying
// the certificate against roots for host.
func httpsGet(t *testing.T, addr, host, path string, roots *x509.CertPool) (*http.Response, string) {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get("https://" + host + path)
	if err != nil {
		t.Fatalf("GET https://%s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// handshake runs a TLS handshake with the router at addr for sni and
// returns the leaf certificate it was given (verified against roots).
func handshake(addr, sni string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 60 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestTLSOnDemandACME: a registered custom domain, a name under a
// registered wildcard and APP.<apps domain> each get a certificate from a
// real ACME CA at their first handshake, HTTP-01 validated through the
// plain-HTTP frontend, and requests reach the app over HTTP/2. Each name is
// ordered once.
func TestTLSOnDemandACME(t *testing.T) {
	for _, fe := range []Frontend{FrontendBerth, FrontendCaddy} {
		t.Run(string(fe), func(t *testing.T) {
			env := newACMEEnv(t)
			b := newBackend(t, "web")
			shop := "shop-" + string(fe) + ".example.com"
			// ForceHTTPS: HTTP-01 challenges must still be answered, not redirected.
			src := NewStaticSource(Route{App: "web", Release: 1, Upstreams: []string{b.addr()},
				Hosts: []string{shop, "*.wild.example.com"}, ForceHTTPS: true})
			opts := env.options("127.0.0.1", src, &certmagic.FileStorage{Path: t.TempDir()})
			opts.Frontend = fe
			opts.AppsDomain = "apps.example.com"
			tr := startRouter(t, opts)
			tr.waitRelease(t, "web", 1)
			names := []string{shop, "a.wild.example.com", "web.apps.example.com"}
			for _, name := range names {
				env.dns.Set(name, "127.0.0.1")
			}
			for _, name := range names {
				resp, body := httpsGet(t, tr.HTTPSAddr(), name, "/", env.pebble.Roots)
				if resp.StatusCode != 200 || body != "web" {
					t.Fatalf("%s: got %d %q", name, resp.StatusCode, body)
				}
				if resp.ProtoMajor != 2 {
					t.Errorf("%s: served over %s, want HTTP/2", name, resp.Proto)
				}
				if err := resp.TLS.PeerCertificates[0].VerifyHostname(name); err != nil {
					t.Error(err)
				}
				if got := b.lastHeader().Get("X-Forwarded-Proto"); got != "https" {
					t.Errorf("%s: X-Forwarded-Proto %q", name, got)
				}
			}
			// Again: served from the cache, nothing ordered.
			for _, name := range names {
				if resp, _ := httpsGet(t, tr.HTTPSAddr(), name, "/", env.pebble.Roots); resp.StatusCode != 200 {
					t.Errorf("%s: second request got %d", name, resp.StatusCode)
				}
				if n := env.pebble.Orders(name); n != 1 {
					t.Errorf("%s: %d orders, want 1", name, n)
				}
			}
		})
	}
}

// TestTLSRefusesUnregisteredNames: names the table does not route get no
// certificate and the CA never hears of them; a host added to the table
// later gets one without a Caddy reload.
func TestTLSRefusesUnregisteredNames(t *testing.T) {
	env := newACMEEnv(t)
	b := newBackend(t, "web")
	route := Route{App: "web", Release: 1, Upstreams: []string{b.addr()}, Hosts: []string{"*.wild.example.com"}}
	src := NewStaticSource(route)
	tr := startRouter(t, env.options("127.0.0.1", src, &certmagic.FileStorage{Path: t.TempDir()}))
	tr.waitRelease(t, "web", 1)
	caddyCtx, appBefore := caddy.ActiveContext().Context, tr.inst.app.Load()

	refused := []string{"evil.example.com", "a.b.wild.example.com", "wild.example.com", "nope.apps.test", "late.example.com"}
	for _, name := range refused {
		env.dns.Set(name, "127.0.0.1")
		if _, err := handshake(tr.HTTPSAddr(), name, env.pebble.Roots); err == nil {
			t.Errorf("%s: handshake succeeded, want it refused", name)
		}
	}
	if n := env.pebble.TotalOrders(); n != 0 {
		t.Fatalf("the CA received %d orders for unregistered names, want 0", n)
	}

	// Registering the name is a table swap, not a reload.
	route.Hosts = append(route.Hosts, "late.example.com")
	src.Set(route)
	err := wait.For(t.Context(), "late.example.com in the table", 10*time.Second, 10*time.Millisecond, func(context.Context) error {
		if _, ok := tr.Table().Lookup("late.example.com"); !ok {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := httpsGet(t, tr.HTTPSAddr(), "late.example.com", "/", env.pebble.Roots); resp.StatusCode != 200 || body != "web" {
		t.Fatalf("late.example.com: got %d %q", resp.StatusCode, body)
	}
	if n := env.pebble.TotalOrders(); n != 1 {
		t.Errorf("%d orders in all, want 1 (late.example.com)", n)
	}
	if caddy.ActiveContext().Context != caddyCtx || tr.inst.app.Load() != appBefore {
		t.Error("Caddy's config was reloaded")
	}
}

// TestTLSALPNChallenge: with the default challenges, a CA that cannot
// reach the plain-HTTP port still validates through TLS-ALPN-01 on the
// HTTPS server (Caddy's handshake answers acme-tls/1).
func TestTLSALPNChallenge(t *testing.T) {
	al := ports.New()
	var addrs [3]string // router HTTP, router HTTPS, Pebble's HTTP-01 port where nothing listens
	for i := range addrs {
		var err error
		if addrs[i], err = al.Addr(); err != nil {
			t.Fatal(err)
		}
	}
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	d := startDNS(t)
	pebble := startPebble(t, port(addrs[2]), port(addrs[1]), d.Addr)
	b := newBackend(t, "web")
	tr := startRouter(t, Options{
		HTTPAddr:              addrs[0],
		HTTPSAddr:             addrs[1],
		ACMECA:                pebble.Directory,
		ACMETrustedRootsFiles: []string{pebble.RootsFile},
		CertStorage:           &certmagic.FileStorage{Path: t.TempDir()},
		Source:                NewStaticSource(Route{App: "web", Release: 1, Upstreams: []string{b.addr()}, Hosts: []string{"alpn.example.com"}}),
	})
	tr.waitRelease(t, "web", 1)
	d.Set("alpn.example.com", "127.0.0.1")
	if resp, body := httpsGet(t, tr.HTTPSAddr(), "alpn.example.com", "/", pebble.Roots); resp.StatusCode != 200 || body != "web" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

// TestTLSSharedStorageOneOrder runs the shared-storage test on Caddy's
// file storage, which locks across processes.
func TestTLSSharedStorageOneOrder(t *testing.T) {
	testSharedStorage(t, storageSpec{Kind: "file", Dir: t.TempDir()})
}

// storageSpec names a certificate storage two processes can open.
type storageSpec struct {
	Kind string `json:"kind"` // "file": certmagic.FileStorage in Dir
	Dir  string `json:"dir,omitempty"`
}

func (s storageSpec) open() (certmagic.Storage, error) {
	switch s.Kind {
	case "file":
		return &certmagic.FileStorage{Path: s.Dir}, nil
	}
	return nil, fmt.Errorf("unknown storage kind %q", s.Kind)
}

// testSharedStorage: two routers (two processes: Caddy runs one config per
// process) share one certificate storage. A challenge router A started is
// answered by router B; both serve the same certificate; a name both are
// asked for at once is ordered exactly once.
func testSharedStorage(t *testing.T, spec storageSpec) {
	env := newACMEEnv(t)
	b := newBackend(t, "web")
	routes := []Route{{App: "web", Release: 1, Upstreams: []string{b.addr()},
		Hosts: []string{"cross.example.com", "race.example.com"}}}

	storeA, err := spec.open()
	if err != nil {
		t.Fatal(err)
	}
	a := startRouter(t, env.options("127.0.0.1", NewStaticSource(routes...), storeA))
	a.waitRelease(t, "web", 1)
	bOpts := env.options("127.0.0.2", nil, nil)
	bOpts.AppsDomain, bOpts.CaddyLogLevel = "apps.test", "ERROR"
	bHTTPS := startHelperRouter(t, helperConfig{Options: bOpts, Routes: routes, Storage: spec})

	// Pebble validates cross.example.com at router B, which did not order it.
	env.dns.Set("cross.example.com", "127.0.0.2")
	certA, err := handshake(a.HTTPSAddr(), "cross.example.com", env.pebble.Roots)
	if err != nil {
		t.Fatalf("router A: %v", err)
	}
	certB, err := handshake(bHTTPS, "cross.example.com", env.pebble.Roots)
	if err != nil {
		t.Fatalf("router B: %v", err)
	}
	if !bytes.Equal(certA.Raw, certB.Raw) {
		t.Error("cross.example.com: the routers serve different certificates")
	}
	if n := env.pebble.Orders("cross.example.com"); n != 1 {
		t.Errorf("cross.example.com: %d orders, want 1", n)
	}

	// Both routers asked at once: one orders, the other waits on the lock
	// and loads the certificate from storage.
	env.dns.Set("race.example.com", "127.0.0.1")
	var wg sync.WaitGroup
	certs := make([]*x509.Certificate, 2)
	errs := make([]error, 2)
	for i, addr := range []string{a.HTTPSAddr(), bHTTPS} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			certs[i], errs[i] = handshake(addr, "race.example.com", env.pebble.Roots)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certs[0].Raw, certs[1].Raw) {
		t.Error("race.example.com: the routers serve different certificates")
	}
	if n := env.pebble.Orders("race.example.com"); n != 1 {
		t.Errorf("race.example.com: %d orders, want 1", n)
	}
	if resp, body := httpsGet(t, bHTTPS, "race.example.com", "/", env.pebble.Roots); resp.StatusCode != 200 || body != "web" {
		t.Errorf("router B: got %d %q", resp.StatusCode, body)
	}
}

// helperConfig is what a helper process runs.
type helperConfig struct {
	Options Options     `json:"options"`
	Routes  []Route     `json:"routes"`
	Storage storageSpec `json:"storage"`
}

const helperEnv = "BERTH_ROUTER_TEST_HELPER"

// startHelperRouter runs a router in a child process (this test binary,
// running TestTLSHelperRouter) and returns its HTTPS address. The child
// stops when the test ends.
func startHelperRouter(t *testing.T, cfg helperConfig) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "helper.json")
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSHelperRouter$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if os.Getenv("BERTH_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		stdin.Close() // the child stops its router and exits
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("helper router did not exit")
		}
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- addr
			}
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	select {
	case addr := <-ready:
		return addr
	case err := <-exited:
		exited <- err
		t.Fatalf("helper router exited: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("helper router did not start\n%s", stderr.String())
	}
	return ""
}

// TestTLSHelperRouter is the child half of startHelperRouter; it does
// nothing in a normal run.
func TestTLSHelperRouter(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("runs only as a helper process")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg helperConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	opts := cfg.Options
	opts.Source = NewStaticSource(cfg.Routes...)
	opts.Logger = testLogger(t)
	if opts.CertStorage, err = cfg.Storage.open(); err != nil {
		t.Fatal(err)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, rt := range cfg.Routes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.WaitForRelease(ctx, rt.App, rt.Release)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	fmt.Printf("READY %s\n", r.HTTPSAddr())
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r.Stop(ctx)
	os.Exit(0) // skip the goroutine check: the parent judges the test
}

// internalRoots reads the internal CA's root from file storage in dir.
func internalRoots(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	pemData, err := os.ReadFile(filepath.Join(dir, "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("no root certificate in the internal CA's root.crt")
	}
	return pool
}

// TestTLSInternalCA: APP.localhost always gets a certificate from Caddy's
// internal CA (the ACME CA here does not even exist), and with InternalCA
// (--dev) so does every registered name; unregistered ones get nothing.
func TestTLSInternalCA(t *testing.T) {
	for _, tc := range []struct {
		name       string
		internalCA bool
		host       string
	}{
		{"localhost", false, "web.localhost"},
		{"dev", true, "shop.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, "web")
			dir := t.TempDir()
			tr := startRouter(t, Options{
				HTTPSAddr:  "127.0.0.1:0",
				AppsDomain: "localhost",
				Source:     NewStaticSource(Route{App: "web", Release: 1, Upstreams: []string{b.addr()}, Hosts: []string{"shop.example.com"}}),
				ACMECA:     "https://127.0.0.1:1/directory", // nothing listens: ACME must not be used
				InternalCA: tc.internalCA,
				DataDir:    dir,
			})
			tr.waitRelease(t, "web", 1)
			roots := internalRoots(t, dir)
			resp, body := httpsGet(t, tr.HTTPSAddr(), tc.host, "/", roots)
			if resp.StatusCode != 200 || body != "web" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			leaf := resp.TLS.PeerCertificates[0]
			if !strings.Contains(leaf.Issuer.CommonName, "Caddy Local Authority") {
				t.Errorf("issuer %q, want Caddy's internal CA", leaf.Issuer.CommonName)
			}
			if _, err := handshake(tr.HTTPSAddr(), "other.localhost", roots); err == nil {
				t.Error("other.localhost (no such app) got a certificate")
			}
		})
	}
}

// TestTLSForceHTTPSAndHSTS: on every frontend, plain HTTP to a ForceHTTPS
// app is a 308 to https on the router's HTTPS port; over HTTPS the app is
// served, with Strict-Transport-Security when it has HSTS. (That ACME
// challenges are not redirected, TestTLSOnDemandACME shows.)
func TestTLSForceHTTPSAndHSTS(t *testing.T) {
	for _, fe := range []Frontend{FrontendBerth, FrontendCaddy, FrontendReverseProxy} {
		t.Run(string(fe), func(t *testing.T) {
			b := newBackend(t, "web")
			dir := t.TempDir()
			httpsAddr, err := ports.New().Addr() // Caddy refuses two servers on 127.0.0.1:0
			if err != nil {
				t.Fatal(err)
			}
			tr := startRouter(t, Options{
				Frontend:   fe,
				HTTPSAddr:  httpsAddr,
				InternalCA: true,
				DataDir:    dir,
				Source: NewStaticSource(
					Route{App: "secure", Release: 1, Upstreams: []string{b.addr()}, ForceHTTPS: true, HSTS: true},
					Route{App: "plain", Release: 1, Upstreams: []string{b.addr()}},
					Route{App: "hsts", Release: 1, Upstreams: []string{b.addr()}, HSTS: true},
				),
			})
			for _, app := range []string{"secure", "plain", "hsts"} {
				tr.waitRelease(t, app, 1)
			}
			roots := internalRoots(t, dir)
			_, httpsPort, _ := net.SplitHostPort(tr.HTTPSAddr())

			resp, _ := tr.get(t, "secure.apps.test", "/p?q=1")
			want := "https://secure.apps.test:" + httpsPort + "/p?q=1"
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
				t.Errorf("plain HTTP: got %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
			}
			if resp.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS header on plain HTTP")
			}

			resp, body := httpsGet(t, tr.HTTPSAddr(), "secure.apps.test", "/p?q=1", roots)
			if resp.StatusCode != 200 || body != "web" {
				t.Fatalf("HTTPS: got %d %q", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
				t.Errorf("HTTPS: Strict-Transport-Security %q", got)
			}
			resp, _ = httpsGet(t, tr.HTTPSAddr(), "hsts.apps.test", "/", roots)
			if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
				t.Errorf("HSTS app over HTTPS: Strict-Transport-Security %q", got)
			}
			resp, _ = tr.get(t, "hsts.apps.test", "/")
			if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "" {
				t.Errorf("HSTS app over plain HTTP: got %d, Strict-Transport-Security %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
			}
			resp, _ = httpsGet(t, tr.HTTPSAddr(), "plain.apps.test", "/", roots)
			if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "" {
				t.Errorf("plain app over HTTPS: got %d, Strict-Transport-Security %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
			}
		})
	}
}
