package router

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule((*UpstreamSource)(nil))
}

// UpstreamSource is the "http.reverse_proxy.upstreams.berth" module: it lets
// a stock reverse_proxy take its upstreams from the berth app's table. It
// answers from memory (one atomic load and a map lookup), as an upstream
// source must.
type UpstreamSource struct {
	app *App
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*UpstreamSource)(nil)
	_ reverseproxy.UpstreamSource = (*UpstreamSource)(nil)
)

// CaddyModule returns the Caddy module information.
func (*UpstreamSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.berth",
		New: func() caddy.Module { return new(UpstreamSource) },
	}
}

// Provision finds the berth app.
func (s *UpstreamSource) Provision(ctx caddy.Context) error {
	app, err := ctx.App("berth")
	if err != nil {
		return err
	}
	s.app = app.(*App)
	return nil
}

// GetUpstreams returns the upstreams of the app the request's Host routes
// to. reverse_proxy writes into the Upstream values it gets, so each call
// returns fresh ones; their health state is shared by address inside
// reverse_proxy.
func (s *UpstreamSource) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	rt := s.app.table.Load().lookup(requestHost(r.Host))
	if rt == nil || len(rt.ups) == 0 {
		return nil, nil
	}
	vals := make([]reverseproxy.Upstream, len(rt.ups))
	out := make([]*reverseproxy.Upstream, len(rt.ups))
	for i, u := range rt.ups {
		vals[i].Dial = u.addr
		out[i] = &vals[i]
	}
	return out, nil
}
