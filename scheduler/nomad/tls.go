package nomad

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// TLS configures HTTPS to a Nomad or Consul agent. The zero value uses the
// system's roots and presents no client certificate. The files are read
// once, by New; a bad file is an error of New naming it.
type TLS struct {
	// CACert is a PEM file of the CA certificates that sign the agent's
	// certificate (NOMAD_CACERT, CONSUL_CACERT); "" trusts the system's
	// roots.
	CACert string
	// ClientCert and ClientKey are PEM files of the certificate and key
	// berth presents, for agents that verify clients
	// (verify_https_client, verify_incoming); both or neither.
	ClientCert, ClientKey string
	// ServerName is the name the agent's certificate must hold
	// (NOMAD_TLS_SERVER_NAME, CONSUL_TLS_SERVER_NAME), e.g.
	// "server.global.nomad" for certificates made by `nomad tls cert
	// create`; "" checks the address's host.
	ServerName string
	// InsecureSkipVerify accepts any certificate (NOMAD_SKIP_VERIFY,
	// CONSUL_HTTP_SSL_VERIFY=false). Anyone on the path can then read the
	// tokens: for trials only.
	InsecureSkipVerify bool
}

// set says whether any option is given: the agent is then reached over
// HTTPS.
func (t TLS) set() bool {
	return t.CACert != "" || t.ClientCert != "" || t.ClientKey != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// config reads the files and returns the client TLS configuration; agent
// ("Nomad", "Consul") names the agent in errors.
func (t TLS) config(agent string) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // an operator's explicit choice
	}
	if t.CACert != "" {
		b, err := os.ReadFile(t.CACert)
		if err != nil {
			return nil, fmt.Errorf("%s CA file: %w", agent, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%s CA file %s: no PEM certificate in it", agent, t.CACert)
		}
		c.RootCAs = pool
	}
	switch {
	case t.ClientCert != "" && t.ClientKey != "":
		cert, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("%s client certificate %s with key %s: %w", agent, t.ClientCert, t.ClientKey, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case t.ClientCert != "":
		return nil, fmt.Errorf("%s client certificate %s has no key file: set both", agent, t.ClientCert)
	case t.ClientKey != "":
		return nil, fmt.Errorf("%s client key %s has no certificate file: set both", agent, t.ClientKey)
	}
	return c, nil
}

// withScheme gives an address a scheme: https when TLS options are set,
// else http. An http:// address with TLS options is an error: the options
// would be silently unused.
func withScheme(agent, addr string, t TLS) (string, error) {
	if !strings.Contains(addr, "://") {
		if t.set() {
			return "https://" + addr, nil
		}
		return "http://" + addr, nil
	}
	if t.set() && strings.HasPrefix(addr, "http://") {
		return "", fmt.Errorf("%s address %s is plain HTTP but %s TLS options are set: use https://", agent, addr, agent)
	}
	return addr, nil
}

// tlsFailure says whether err is a failed TLS handshake: the agent's
// certificate is not trusted (wrong CA, wrong name, expired) or the agent
// refused berth's. Such an error is a configuration error, not
// unavailability: retrying does not help.
func tlsFailure(err error) bool {
	var (
		verr  *tls.CertificateVerificationError
		uerr  x509.UnknownAuthorityError
		herr  x509.HostnameError
		cerr  x509.CertificateInvalidError
		alert tls.AlertError
		rerr  tls.RecordHeaderError
	)
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) ||
		errors.As(err, &alert) || errors.As(err, &rerr) {
		return true
	}
	// Some errors arrive as text only (Consul's client, the server's
	// alert as seen by the handshake).
	msg := err.Error()
	return strings.Contains(msg, "x509: ") || strings.Contains(msg, "server gave HTTP response to HTTPS client") ||
		(strings.Contains(msg, "tls: ") && !strings.Contains(msg, "use of closed connection"))
}

// tlsHint says what to check after a failed handshake with an agent.
func tlsHint(addr string, t TLS) string {
	host := addr
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		host = u.Hostname()
	}
	ca := "the system's roots"
	if t.CACert != "" {
		ca = "CA file " + t.CACert
	}
	name := host
	if t.ServerName != "" {
		name = t.ServerName
	}
	return fmt.Sprintf("TLS handshake failed (berth trusts %s and expects the name %q in the certificate)", ca, name)
}
