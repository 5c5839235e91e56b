package router

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Load-balancing policies a Route may name.
const (
	LBRoundRobin = "round_robin"
	LBLeastConn  = "least_conn"
)

// ErrInvalidRoute is wrapped by every route validation error.
var ErrInvalidRoute = errors.New("invalid route")

// Route is what the router needs to know about one app: which hosts it
// answers on, which release is active and where that release's healthy
// instances listen. A Source delivers full snapshots of routes.
type Route struct {
	// App is the app name; the app always answers on APP.<apps domain>.
	App string `json:"app"`
	// Release is the active release number; WaitForRelease watches it.
	Release uint64 `json:"release"`
	// Hosts are the custom domains: exact ("example.com") or one-label
	// wildcards ("*.example.com").
	Hosts []string `json:"hosts,omitempty"`
	// Upstreams are the healthy instances of the active release, host:port.
	Upstreams []string `json:"upstreams,omitempty"`
	// ForceHTTPS redirects plain-HTTP requests to https.
	ForceHTTPS bool `json:"force_https,omitempty"`
	// HSTS sends Strict-Transport-Security (one year) on HTTPS responses.
	HSTS bool `json:"hsts,omitempty"`
	// LB is the load-balancing policy: round_robin (default) or least_conn.
	LB string `json:"lb,omitempty"`
}

// Validate reports the first problem with r, wrapping ErrInvalidRoute.
func (r Route) Validate() error {
	if !validAppName(r.App) {
		return fmt.Errorf("%w: app name %q: use 1-63 lowercase letters, digits or dashes", ErrInvalidRoute, r.App)
	}
	for _, h := range r.Hosts {
		if _, err := normalizeRouteHost(h); err != nil {
			return fmt.Errorf("%w: app %s: %w", ErrInvalidRoute, r.App, err)
		}
	}
	for _, u := range r.Upstreams {
		if err := validUpstream(u); err != nil {
			return fmt.Errorf("%w: app %s: %w", ErrInvalidRoute, r.App, err)
		}
	}
	switch r.LB {
	case "", LBRoundRobin, LBLeastConn:
	default:
		return fmt.Errorf("%w: app %s: load-balancing policy %q: use %s or %s", ErrInvalidRoute, r.App, r.LB, LBRoundRobin, LBLeastConn)
	}
	return nil
}

// clone returns a deep copy, so a Table never shares slices with its source.
func (r Route) clone() Route {
	r.Hosts = slices.Clone(r.Hosts)
	r.Upstreams = slices.Clone(r.Upstreams)
	return r
}

func validAppName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// normalizeRouteHost lowercases a configured host and checks its syntax;
// a leading "*." marks a one-label wildcard.
func normalizeRouteHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	name := strings.TrimPrefix(h, "*.")
	if name == "" || len(h) > 253 || strings.Contains(name, "*") {
		return "", fmt.Errorf("host %q: want a domain name or *.domain", h)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("host %q: bad label %q", h, label)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("host %q: bad character %q", h, c)
			}
		}
	}
	return h, nil
}

func validUpstream(u string) error {
	host, port, err := net.SplitHostPort(u)
	if err != nil || host == "" {
		return fmt.Errorf("upstream %q: want host:port", u)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("upstream %q: bad port", u)
	}
	return nil
}

// requestHost turns a request's Host header into the form table keys use:
// no port, no trailing dot, lowercase. It allocates only when the header
// has upper-case letters.
func requestHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		h = h[1 : len(h)-1]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
