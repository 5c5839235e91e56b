package router

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

// Goroutines the TLS tests leave that are not the router's: Pebble's VA
// task loop (never ended, one per Pebble); certmagic's per-CA-and-account
// rate limiter (process-global, one per Pebble since each has its own
// URL); certmagic's file-lock refreshers, which notice within 5 s that
// their lock was released.
func init() {
	caddyGlobals = append(caddyGlobals,
		goleak.IgnoreAnyFunction("github.com/letsencrypt/pebble/v2/va.VAImpl.processTasks"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
	)
}

// testPebble is a real ACME server (Let's Encrypt's Pebble) in the test
// process. Its VA really validates: HTTP-01 requests go to the resolved
// address at httpPort, names resolve through a testDNS.
type testPebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// RootsFile is a PEM file of the ACME server's own HTTPS certificate,
	// for Options.ACMETrustedRootsFiles.
	RootsFile string
	// Roots verifies the certificates Pebble issues.
	Roots *x509.CertPool

	mu     sync.Mutex
	orders map[string]int // identifier → new-order requests naming it
}

// startPebble runs Pebble with its VA checking HTTP-01 on httpPort and
// TLS-ALPN-01 on tlsPort, resolving names through dnsAddr (TCP).
func startPebble(t *testing.T, httpPort, tlsPort int, dnsAddr string) *testPebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // no random 0-5 s sleep before each validation
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no deliberately rejected nonces
	t.Setenv("PEBBLE_AUTHZREUSE", "0")      // every order validates for real
	logOut := io.Discard
	if os.Getenv("BERTH_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	logger := log.New(logOut, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	p := &testPebble{orders: map[string]int{}, Roots: x509.NewCertPool()}
	p.Roots.AddCert(authority.GetRootCert(0).Cert)
	handler := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/order-plz") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.countOrder(body)
		}
		handler.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.Directory = srv.URL + wfe.DirectoryPath
	p.RootsFile = filepath.Join(t.TempDir(), "acme-server.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p.RootsFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// countOrder records the identifiers of a newOrder request (a JWS whose
// payload is {"identifiers": [{"type", "value"}]}).
func (p *testPebble) countOrder(jws []byte) {
	var msg struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(jws, &msg) != nil {
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(msg.Payload)
	if err != nil {
		return
	}
	var order struct {
		Identifiers []struct {
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	if json.Unmarshal(payload, &order) != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range order.Identifiers {
		p.orders[id.Value]++
	}
}

// Orders returns how many orders named host.
func (p *testPebble) Orders(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[host]
}

// TotalOrders returns how many orders Pebble received.
func (p *testPebble) TotalOrders() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.orders {
		n += c
	}
	return n
}

// testDNS answers A queries for the names it was given, over TCP (as
// Pebble's VA asks); everything else gets an empty answer.
type testDNS struct {
	Addr string

	mu    sync.Mutex
	hosts map[string]net.IP // fqdn → address
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &testDNS{Addr: ln.Addr().String(), hosts: map[string]net.IP{}}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(d.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

// Set points name at ip.
func (d *testDNS) Set(name, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hosts[dns.Fqdn(name)] = net.ParseIP(ip)
}

func (d *testDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	d.mu.Lock()
	for _, q := range req.Question {
		ip := d.hosts[strings.ToLower(q.Name)]
		if q.Qtype == dns.TypeA && ip != nil {
			resp.Answer = append(resp.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   ip,
			})
		}
	}
	d.mu.Unlock()
	w.WriteMsg(resp)
}
