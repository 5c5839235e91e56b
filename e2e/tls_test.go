package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
)

// httpsVia sends GET https://host/ to the router's HTTPS listener at addr
// (SNI host, verified against roots) and returns the response (body read)
// and the leaf certificate served.
func httpsVia(ctx context.Context, addr, host string, roots *x509.CertPool) (*http.Response, string, *x509.Certificate, error) {
	hc := tlsVia(addr, roots)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/", nil)
	if err != nil {
		return nil, "", nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", nil, err
	}
	return resp, string(body), resp.TLS.PeerCertificates[0], nil
}

// tlsHandshake runs a bare handshake with the router at addr for sni,
// trusting only roots, and returns the leaf it got.
func tlsHandshake(addr, sni string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr, &tls.Config{ServerName: sni, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTwoRoutersShareCertificates runs two real `berth router` processes
// with --https against one server and a real ACME CA (Pebble, in the test
// process). Certificates, accounts, challenge tokens and locks live in the
// control plane, so:
//
//   - router B orders a custom domain's certificate while the CA validates
//     at router A only (A's HTTP port for HTTP-01, A's HTTPS port for
//     TLS-ALPN-01): A answers the challenge B's order started, from the
//     shared storage;
//   - router A then serves the same certificate without ordering;
//   - a name asked of both routers at the same moment is ordered once;
//   - an unregistered name gets no certificate and no order;
//   - the certificate is in the control plane (certificates/...), sealed:
//     neither it nor its private key appears in the server's data dir.
func TestTwoRoutersShareCertificates(t *testing.T) {
	requireDocker(t)
	began := time.Now()
	c := startCluster(t, 1, harness.Options{Builds: true, Stack: testStack, Runtime: "docker",
		AppsDomain: "apps.test"})
	ctx := ctxT(t, 5*time.Minute)
	cl := c.Client(0)

	// The app, on the docker runtime.
	tags := buildTinyImages(t, "berth-e2e/tls-"+strings.ToLower(t.Name()), 1)
	if _, err := cl.CreateApp(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UpdateConfig(ctx, "shop", api.ConfigUpdateRequest{Set: map[string]string{"BODY": "shop-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeployImage(ctx, "shop", api.ImageDeployRequest{Image: tags[0]}); err != nil {
		t.Fatal(err)
	}
	const (
		shop = "shop.example.com" // ordered by B, validated at A
		race = "race.example.com" // asked of A and B at once
		evil = "evil.example.com" // not registered
	)
	for _, d := range []string{shop, race} {
		if _, err := cl.AddDomain(ctx, "shop", d); err != nil {
			t.Fatal(err)
		}
	}

	// Pebble validates at router A's ports only: every name resolves to
	// 127.0.0.1, its HTTP-01 port is A's plain-HTTP port and its TLS-ALPN-01
	// port A's HTTPS port. Router B's listeners are on other ports.
	var aHTTP, aHTTPS, bHTTP, bHTTPS string
	for _, p := range []*string{&aHTTP, &aHTTPS, &bHTTP, &bHTTPS} {
		var err error
		if *p, err = c.FreeAddr(); err != nil {
			t.Fatal(err)
		}
	}
	dnsSrv := startE2EDNS(t)
	for _, name := range []string{shop, race, evil, "nope.apps.test"} {
		dnsSrv.Set(name, "127.0.0.1")
	}
	pebble := startE2EPebble(t, addrPort(t, aHTTP), addrPort(t, aHTTPS), dnsSrv.Addr)
	roots, err := pebble.IssuingRoots(ctx)
	if err != nil {
		t.Fatal(err)
	}

	tok, err := cl.CreateToken(ctx, api.TokenCreateRequest{Name: "edge", Role: api.RoleRouter})
	if err != nil {
		t.Fatal(err)
	}
	acme := []string{"--acme-ca", pebble.Directory, "--acme-ca-root", pebble.RootsFile, "--acme-email", "ops@example.com"}
	ra, err := c.StartRouterAt("a", 0, tok.Secret, aHTTP, aHTTPS, acme...)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := c.StartRouterAt("b", 0, tok.Secret, bHTTP, bHTTPS, acme...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*harness.Router{ra, rb} {
		for _, host := range []string{"shop.apps.test", shop, race} {
			waitRouted(t, r.HTTPAddr, host, "shop-1")
		}
	}
	t.Logf("cluster, app and routers up in %s", time.Since(began).Round(time.Millisecond))

	var shopCert *x509.Certificate
	t.Run("router B orders, router A answers the challenge", func(t *testing.T) {
		start := time.Now()
		resp, body, leaf, err := httpsVia(ctx, rb.HTTPSAddr, shop, roots)
		if err != nil {
			t.Fatalf("HTTPS to router B: %v", err)
		}
		if resp.StatusCode != 200 || body != "shop-1" {
			t.Fatalf("HTTPS to router B: got %d %q, want 200 %q", resp.StatusCode, body, "shop-1")
		}
		t.Logf("first HTTPS request through router B (certificate ordered): %s, %s", time.Since(start).Round(time.Millisecond), resp.Proto)
		if err := leaf.VerifyHostname(shop); err != nil {
			t.Error(err)
		}
		st, err := pebble.CertStatus(ctx, leaf.SerialNumber)
		if err != nil || st != "Valid" {
			t.Errorf("Pebble's status of serial %x: %q %v, want Valid (issued by this Pebble)", leaf.SerialNumber, st, err)
		}
		if n := pebble.Orders(shop); n != 1 {
			t.Errorf("%s: %d orders, want 1", shop, n)
		}
		// Pebble knows only router A's ports; say which way it validated.
		// (It checks each challenge from several perspectives.)
		httpChecks := pebble.LogLines("Attempting to validate w/ HTTP: http://" + shop + ":")
		tokens := map[string]bool{}
		for _, l := range httpChecks {
			if !strings.Contains(l, fmt.Sprintf("%s:%d/", shop, addrPort(t, aHTTP))) {
				t.Errorf("Pebble validated somewhere other than router A's HTTP port: %s", l)
			}
			tokens[l[strings.LastIndexByte(l, '/')+1:]] = true
		}
		valid := len(pebble.LogLines("set VALID by completed challenge"))
		t.Logf("Pebble validated %s at router A: %d HTTP-01 challenge(s) (%d requests to %s), %d TLS-ALPN-01 (at %s)",
			shop, len(tokens), len(httpChecks), aHTTP, max(valid-len(tokens), 0), aHTTPS)
		shopCert = leaf
	})
	if shopCert == nil {
		t.FailNow()
	}

	t.Run("router A serves the same certificate", func(t *testing.T) {
		resp, body, leaf, err := httpsVia(ctx, ra.HTTPSAddr, shop, roots)
		if err != nil {
			t.Fatalf("HTTPS to router A: %v", err)
		}
		if resp.StatusCode != 200 || body != "shop-1" {
			t.Fatalf("HTTPS to router A: got %d %q", resp.StatusCode, body)
		}
		if leaf.SerialNumber.Cmp(shopCert.SerialNumber) != 0 || !bytes.Equal(leaf.Raw, shopCert.Raw) {
			t.Errorf("router A serves serial %x, router B %x: not the same certificate", leaf.SerialNumber, shopCert.SerialNumber)
		}
		if n := pebble.Orders(shop); n != 1 {
			t.Errorf("%s: %d orders after router A's request, want still 1", shop, n)
		}
	})

	t.Run("both routers asked at once: one order", func(t *testing.T) {
		start := time.Now()
		go1 := make(chan struct{})
		var wg sync.WaitGroup
		certs := make([]*x509.Certificate, 2)
		errs := make([]error, 2)
		for i, addr := range []string{ra.HTTPSAddr, rb.HTTPSAddr} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-go1
				resp, body, leaf, err := httpsVia(ctx, addr, race, roots)
				if err == nil && (resp.StatusCode != 200 || body != "shop-1") {
					err = fmt.Errorf("got %d %q", resp.StatusCode, body)
				}
				certs[i], errs[i] = leaf, err
			}()
		}
		close(go1)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		t.Logf("simultaneous requests to both routers answered in %s", time.Since(start).Round(time.Millisecond))
		if !bytes.Equal(certs[0].Raw, certs[1].Raw) {
			t.Errorf("%s: router A serves serial %x, router B %x", race, certs[0].SerialNumber, certs[1].SerialNumber)
		}
		if n := pebble.Orders(race); n != 1 {
			t.Errorf("%s: %d orders, want exactly 1", race, n)
		}
	})

	t.Run("unregistered names get nothing", func(t *testing.T) {
		before := pebble.TotalOrders()
		for _, r := range []*harness.Router{ra, rb} {
			for _, name := range []string{evil, "nope.apps.test"} {
				if leaf, err := tlsHandshake(r.HTTPSAddr, name, roots); err == nil {
					t.Errorf("router %s gave %s a certificate (serial %x)", r.Name, name, leaf.SerialNumber)
				}
				// Not even an untrusted one.
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", r.HTTPSAddr,
					&tls.Config{ServerName: name, InsecureSkipVerify: true})
				if err == nil {
					t.Errorf("router %s completed a handshake for %s with certificate %q",
						r.Name, name, conn.ConnectionState().PeerCertificates[0].Subject)
					conn.Close()
				}
			}
		}
		if n := pebble.TotalOrders(); n != before {
			t.Errorf("%d orders after asking for unregistered names, want %d", n, before)
		}
		if n := pebble.Orders(evil) + pebble.Orders("nope.apps.test"); n != 0 {
			t.Errorf("%d orders for unregistered names", n)
		}
	})

	t.Run("the certificate is in the control plane, sealed", func(t *testing.T) {
		routerCl := api.NewClient(c.Servers[0].APIAddr, tok.Secret, nil)
		entries, err := routerCl.CertList(ctx, "certificates/")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, e := range entries {
			keys = append(keys, e.Key)
		}
		var crtKey, keyKey string
		for _, k := range keys {
			switch {
			case strings.HasSuffix(k, "/"+shop+"/"+shop+".crt"):
				crtKey = k
			case strings.HasSuffix(k, "/"+shop+"/"+shop+".key"):
				keyKey = k
			}
		}
		if crtKey == "" || keyKey == "" {
			t.Fatalf("no certificate or key of %s under certificates/: %v", shop, keys)
		}
		t.Logf("control-plane keys under certificates/: %v", keys)
		crt, err := routerCl.CertGet(ctx, crtKey)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode(crt.Value)
		if block == nil || !bytes.Equal(block.Bytes, shopCert.Raw) {
			t.Errorf("%s does not hold the certificate the routers serve", crtKey)
		}
		key, err := routerCl.CertGet(ctx, keyKey)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(key.Value, []byte("PRIVATE KEY")) {
			t.Fatalf("%s: %q is no private key", keyKey, key.Value)
		}
		// What the server keeps on disk (raft log, snapshots) names the
		// keys but holds the values only sealed: neither the PEM nor its
		// base64 (a JSON []byte) appears anywhere in the data dir.
		leaks := map[string][]byte{}
		for name, v := range map[string][]byte{"certificate": crt.Value, "private key": key.Value} {
			body := v[bytes.IndexByte(v, '\n')+1:] // past the BEGIN line
			leaks[name+" (PEM)"] = body[:min(64, len(body))]
			leaks[name+" (base64 of the PEM)"] = []byte(base64.StdEncoding.EncodeToString(v)[:64])
		}
		found := map[string][]string{}
		keyNamed := false
		err = filepath.WalkDir(c.Servers[0].DataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil // files come and go while the server runs
			}
			if info, err := d.Info(); err != nil || info.Size() > 256<<20 {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			keyNamed = keyNamed || bytes.Contains(data, []byte(keyKey))
			for what, needle := range leaks {
				if bytes.Contains(data, needle) {
					found[what] = append(found[what], path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !keyNamed {
			t.Errorf("key %s appears nowhere in the server's data dir: the search for plaintext proves nothing", keyKey)
		}
		for _, what := range slices.Sorted(maps.Keys(found)) {
			t.Errorf("the %s is stored in the clear in %v", what, found[what])
		}
	})
	t.Logf("test took %s; Pebble received %d order(s)", time.Since(began).Round(time.Millisecond), pebble.TotalOrders())
}
