package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// e2ePebble is Let's Encrypt's Pebble ACME server in the test process, as
// in the router package's tests: its VA really validates (HTTP-01 at the
// resolved address on httpPort, TLS-ALPN-01 on tlsPort), resolving names
// through an e2eDNS. Its directory and management API are served over
// HTTPS with httptest's certificate; nothing else is trusted.
type e2ePebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// RootsFile is a PEM file of the ACME server's own HTTPS certificate,
	// for --acme-ca-root.
	RootsFile string
	// Management is the management API's base URL (/roots/0,
	// /cert-status-by-serial/...); MgmtClient trusts its HTTPS.
	Management string
	MgmtClient *http.Client

	mu     sync.Mutex
	orders map[string]int // identifier → new-order requests naming it
	log    bytes.Buffer   // Pebble's log
}

// startE2EPebble runs Pebble until the test ends.
func startE2EPebble(t *testing.T, httpPort, tlsPort int, dnsAddr string) *e2ePebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")      // no random 0-5 s sleep before each validation
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0") // no deliberately rejected nonces
	t.Setenv("PEBBLE_AUTHZREUSE", "0")      // every order validates for real
	p := &e2ePebble{orders: map[string]int{}}
	var logOut io.Writer = (*lockedWriter)(p)
	if os.Getenv("BERTH_TEST_LOG") != "" {
		logOut = io.MultiWriter(logOut, os.Stderr)
	}
	logger := log.New(logOut, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

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
	mgmt := httptest.NewUnstartedServer(front.ManagementHandler())
	mgmt.Config.ErrorLog = log.New(io.Discard, "", 0)
	mgmt.StartTLS()
	t.Cleanup(mgmt.Close)

	p.Directory = srv.URL + wfe.DirectoryPath
	p.Management = mgmt.URL
	p.MgmtClient = mgmt.Client()
	p.RootsFile = filepath.Join(t.TempDir(), "acme-server.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(p.RootsFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lockedWriter is Pebble's log sink: its buffer, under its lock.
type lockedWriter e2ePebble

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Write(b)
}

// LogLines returns the lines of Pebble's log that contain s.
func (p *e2ePebble) LogLines(s string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// IssuingRoots fetches the root Pebble issues under from its management
// API (/roots/0) as a pool: the only CA the test trusts for the routers.
func (p *e2ePebble) IssuingRoots(ctx context.Context) (*x509.CertPool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Management+"/roots/0", nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.MgmtClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /roots/0: %s: %s", resp.Status, body)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		return nil, fmt.Errorf("GET /roots/0: no PEM certificate in %q", body)
	}
	return pool, nil
}

// CertStatus asks the management API about the certificate with serial:
// "Valid" if Pebble issued it.
func (p *e2ePebble) CertStatus(ctx context.Context, serial *big.Int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Management+"/cert-status-by-serial/"+serial.Text(16), nil)
	if err != nil {
		return "", err
	}
	resp, err := p.MgmtClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "unknown", nil
	}
	var st struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", fmt.Errorf("cert-status-by-serial: %s: %w", resp.Status, err)
	}
	return st.Status, nil
}

// countOrder records the identifiers of a newOrder request (a JWS whose
// payload is {"identifiers": [{"type", "value"}]}).
func (p *e2ePebble) countOrder(jws []byte) {
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
func (p *e2ePebble) Orders(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[host]
}

// TotalOrders returns how many names all orders named.
func (p *e2ePebble) TotalOrders() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.orders {
		n += c
	}
	return n
}

// e2eDNS answers A queries for the names it was given, over TCP (as
// Pebble's VA asks); everything else gets an empty answer.
type e2eDNS struct {
	Addr string

	mu    sync.Mutex
	hosts map[string]net.IP // fqdn → address
}

func startE2EDNS(t *testing.T) *e2eDNS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &e2eDNS{Addr: ln.Addr().String(), hosts: map[string]net.IP{}}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(d.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return d
}

// Set points name at ip.
func (d *e2eDNS) Set(name, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hosts[dns.Fqdn(strings.ToLower(name))] = net.ParseIP(ip)
}

func (d *e2eDNS) serve(w dns.ResponseWriter, req *dns.Msg) {
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

// tlsVia returns an HTTPS client that sends every request to addr (a
// router's HTTPS listener) whatever the URL's host, which is still the SNI
// and the name verified against roots. Each client has its own
// connections.
func tlsVia(addr string, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}
	return &http.Client{Transport: tr, Timeout: 45 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
