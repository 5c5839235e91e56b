package nomadtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLS holds the PEM files of a test CA and of certificates it signed: one
// for the agents' HTTPS APIs and one for clients (berth, Nomad talking to
// Consul).
type TLS struct {
	// CAFile is the CA certificate.
	CAFile string
	// CertFile and KeyFile are the agents' server certificate and key,
	// valid for 127.0.0.1, ::1, localhost, server.global.nomad,
	// client.global.nomad and server.dc1.consul.
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile are a client certificate and key.
	ClientCertFile, ClientKeyFile string
}

// serverNames are the DNS names in the server certificate of NewTLS.
var serverNames = []string{"localhost", "server.global.nomad", "client.global.nomad", "server.dc1.consul"}

// NewTLS makes a new CA and certificates signed by it (ECDSA P-256, valid
// for a day) in a temporary directory of t.
func NewTLS(t testing.TB) *TLS {
	t.Helper()
	f, err := newTLS(t.TempDir())
	if err != nil {
		t.Fatalf("nomadtest: make TLS files: %v", err)
	}
	return f
}

func newTLS(dir string) (*TLS, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth nomadtest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	f := &TLS{
		CAFile:         filepath.Join(dir, "ca.pem"),
		CertFile:       filepath.Join(dir, "server.pem"),
		KeyFile:        filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	if err := writePEM(f.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string, names []string, ips []net.IP) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			DNSNames:     names,
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyFile, "PRIVATE KEY", kder)
	}
	if err := leaf(2, "server.global.nomad", x509.ExtKeyUsageServerAuth, f.CertFile, f.KeyFile,
		serverNames, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}); err != nil {
		return nil, err
	}
	if err := leaf(3, "berth nomadtest client", x509.ExtKeyUsageClientAuth, f.ClientCertFile, f.ClientKeyFile, nil, nil); err != nil {
		return nil, err
	}
	return f, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// client is the HTTP client the harness reaches the agents with: plain,
// or trusting the CA of f.
func (f *TLS) client() (*http.Client, error) {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if f != nil {
		pool := x509.NewCertPool()
		b, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nomadtest: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("nomadtest: no certificate in %s", f.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}, nil
}

// consulHCL is the Consul agent's TLS configuration: HTTPS with the
// server certificate, client certificates not required.
func (f *TLS) consulHCL() string {
	return fmt.Sprintf(`tls { defaults { ca_file = %q
cert_file = %q
key_file = %q
verify_incoming = false
verify_outgoing = false } }`, f.CAFile, f.CertFile, f.KeyFile)
}
