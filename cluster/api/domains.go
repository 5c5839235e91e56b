package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Domain is a custom host name of an app.
type Domain struct {
	Name      string    `json:"name"`
	App       string    `json:"app"`
	CreatedAt time.Time `json:"created_at"`
}

// DomainAddRequest is the body of POST /v1/apps/{app}/domains.
type DomainAddRequest struct {
	Domain string `json:"domain"`
}

// NormalizeDomain lowercases a custom domain, drops a trailing dot and
// checks it: a DNS name of two labels or more ("example.com",
// "www.example.com") or a one-label wildcard ("*.example.com"); no IP
// addresses, ports, schemes or paths.
func NormalizeDomain(d string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	bad := func(why string) (string, error) {
		return "", &Error{Code: CodeInvalidName, Message: fmt.Sprintf("invalid domain %q: %s", clip(d), why)}
	}
	if strings.Contains(name, "://") || strings.ContainsAny(name, "/:@ ") {
		return bad("give a bare host name like www.example.com (no scheme, port or path)")
	}
	host := strings.TrimPrefix(name, "*.")
	if strings.Contains(host, "*") {
		return bad("a wildcard is only allowed as the whole first label, as in *.example.com")
	}
	if len(name) > 253 {
		return bad("longer than 253 characters")
	}
	if net.ParseIP(host) != nil {
		return bad("an IP address is not a domain")
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return bad("use a fully qualified name with a dot, like example.com")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad(fmt.Sprintf("label %q must be 1-63 characters and not start or end with a dash", clip(l)))
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("label %q: use letters, digits and dashes", clip(l)))
			}
		}
	}
	return name, nil
}

// Domains lists an app's custom domains.
func (c *Client) Domains(ctx context.Context, app string, q *QueryOptions) ([]Domain, *QueryMeta, error) {
	var out []Domain
	meta, err := c.get(ctx, "/v1/apps/"+esc(app)+"/domains", q, nil, &out)
	return out, meta, err
}

// AddDomain gives a custom domain to an app; a domain of another app is a
// conflict.
func (c *Client) AddDomain(ctx context.Context, app, domain string) (*Domain, error) {
	var out Domain
	if err := c.write(ctx, http.MethodPost, "/v1/apps/"+esc(app)+"/domains", DomainAddRequest{Domain: domain}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveDomain takes a custom domain from an app.
func (c *Client) RemoveDomain(ctx context.Context, app, domain string) error {
	return c.write(ctx, http.MethodDelete, "/v1/apps/"+esc(app)+"/domains/"+esc(domain), nil, nil)
}
