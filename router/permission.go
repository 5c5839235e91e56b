package router

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
)

func init() {
	caddy.RegisterModule((*Permission)(nil))
}

// Permission is the "tls.permission.berth" module: on-demand TLS may load
// or obtain a certificate for a name only if the route table being served
// routes it — an exact custom host, a name one label under a registered
// wildcard (*.example.com allows a.example.com), or APP.<apps domain> of an
// app in the table. Anything else is refused before storage or the CA is
// touched, so nobody can make the router order certificates for names
// pointed at it. It reads the table the App swaps in, so adding a domain
// needs no Caddy reload.
type Permission struct {
	// Instance names the Router whose table decides.
	Instance string `json:"instance"`

	inst *instance
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Permission)(nil)
	_ caddytls.OnDemandPermission = (*Permission)(nil)
)

// CaddyModule returns the Caddy module information.
func (*Permission) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "tls.permission.berth", New: func() caddy.Module { return new(Permission) }}
}

// Provision finds the router instance. It must not look up the berth app:
// the tls app provisions this module, and the berth app may need the tls app.
func (p *Permission) Provision(ctx caddy.Context) error {
	if p.Instance == "" {
		return fmt.Errorf("tls.permission.berth: no router instance given")
	}
	mod, err := ctx.LoadModuleByID(instanceModulePrefix+p.Instance, nil)
	if err != nil {
		return fmt.Errorf("tls.permission.berth: router instance %s: %w", p.Instance, err)
	}
	p.inst = mod.(*instanceModule).inst
	if p.inst == nil {
		return fmt.Errorf("tls.permission.berth: router instance %s is gone", p.Instance)
	}
	return nil
}

// CertificateAllowed implements caddytls.OnDemandPermission.
func (p *Permission) CertificateAllowed(_ context.Context, name string) error {
	a := p.inst.app.Load()
	if a == nil {
		return fmt.Errorf("%w: %s: the router is not running", caddytls.ErrPermissionDenied, name)
	}
	if !certificateAllowed(a.Table(), name) {
		return fmt.Errorf("%w: %s is not routed by berth", caddytls.ErrPermissionDenied, name)
	}
	return nil
}

// certificateAllowed reports whether t routes name (a TLS server name).
func certificateAllowed(t *Table, name string) bool {
	if _, err := netip.ParseAddr(name); err == nil {
		return false // certificates are for domain names only
	}
	if strings.HasPrefix(name, "*.") {
		return false // a wildcard certificate needs DNS-01, which berth does not do
	}
	h, err := normalizeRouteHost(name)
	if err != nil {
		return false
	}
	return t.lookup(h) != nil
}
