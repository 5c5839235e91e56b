package router

import (
	"cmp"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"weak"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
)

// TLS: certificates on demand, for registered names only.
//
// The HTTPS side is Caddy's http server with the berth handler and a TLS
// connection policy; Caddy's tls app gets certificates at handshake time
// (on demand) from an ACME CA (Let's Encrypt by default) or, for --dev and
// *.localhost, from Caddy's internal CA. Before anything is loaded from
// storage or ordered, tls.permission.berth checks the name against the
// current route table. Certificates, ACME accounts, challenge tokens and
// locks live in caddy.storage.berth, a Go certmagic.Storage (the control
// plane's, shared by every router) or Caddy's file storage.
//
// The Go values (the storage, the HTTPS port for redirects, the running tls
// app) reach these modules the way the Source reaches the App: a module
// berth.tls.<instance id> registered by New whose constructor returns a
// weak pointer to the router's tlsState. See DESIGN.md.

// DefaultACMECA is Let's Encrypt's production directory.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

func init() {
	caddy.RegisterModule((*tlsApp)(nil))
}

// tlsState is the Go-side half of a Router's TLS.
type tlsState struct {
	storage   certmagic.Storage // nil: Caddy's file storage under DataDir
	httpsPort atomic.Int32      // for ForceHTTPS redirects; 0 or 443: no port in the URL

	tls atomic.Pointer[caddytls.TLS] // Caddy's tls app while the router runs
}

const tlsStateModulePrefix = "berth.tls."

// tlsStateModule is what the registry hands out for a tlsState.
type tlsStateModule struct {
	st  *tlsState
	id  string
	ref weak.Pointer[tlsState]
}

// CaddyModule returns the Caddy module information; like instanceModule,
// the registry entry only holds a weak pointer.
func (m *tlsStateModule) CaddyModule() caddy.ModuleInfo {
	ref := m.ref
	return caddy.ModuleInfo{
		ID:  caddy.ModuleID(tlsStateModulePrefix + m.id),
		New: func() caddy.Module { return &tlsStateModule{st: ref.Value(), id: m.id, ref: ref} },
	}
}

// registerTLSState makes st loadable under the router's instance id.
func registerTLSState(id string, st *tlsState) {
	caddy.RegisterModule(&tlsStateModule{id: id, ref: weak.Make(st)})
}

// loadTLSState loads the tlsState of instance id while provisioning.
func loadTLSState(ctx caddy.Context, id string) (*tlsState, error) {
	if id == "" {
		return nil, fmt.Errorf("no router instance given")
	}
	mod, err := ctx.LoadModuleByID(tlsStateModulePrefix+id, nil)
	if err != nil {
		return nil, fmt.Errorf("router instance %s: %w", id, err)
	}
	st := mod.(*tlsStateModule).st
	if st == nil {
		return nil, fmt.Errorf("router instance %s is gone", id)
	}
	return st, nil
}

// tlsState finds the App's tlsState outside provisioning. It costs a
// registry lookup, so only rare requests (ACME challenges, HTTPS redirects)
// use it; nil when the router has no HTTPS side or runs JSON-only.
func (a *App) tlsState() *tlsState {
	if a.Instance == "" {
		return nil
	}
	info, err := caddy.GetModule(tlsStateModulePrefix + a.Instance)
	if err != nil {
		return nil
	}
	return info.New().(*tlsStateModule).st
}

// handleACMEChallenge answers an ACME HTTP-01 challenge on the lean
// frontend (Caddy's http server answers them itself). The token may come
// from this router's own order or, through the shared storage, another's.
func (a *App) handleACMEChallenge(w http.ResponseWriter, r *http.Request) bool {
	st := a.tlsState()
	if st == nil {
		return false
	}
	t := st.tls.Load()
	if t == nil {
		return false
	}
	return t.HandleHTTPChallenge(w, r)
}

// httpsRedirectPort is the port https redirects name, "" for 443.
func (a *App) httpsRedirectPort() string {
	st := a.tlsState()
	if st == nil {
		return ""
	}
	if p := st.httpsPort.Load(); p != 0 && p != 443 {
		return strconv.Itoa(int(p))
	}
	return ""
}

// tlsApp is the "berth_tls" Caddy app: it hands the running tls app to the
// router's tlsState, so the lean frontend can answer ACME challenges. It
// is an app because an app can look up another app while provisioning,
// before anything serves.
type tlsApp struct {
	Instance string `json:"instance"`

	st  *tlsState
	tls *caddytls.TLS
}

// CaddyModule returns the Caddy module information.
func (*tlsApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "berth_tls", New: func() caddy.Module { return new(tlsApp) }}
}

// Provision finds the tlsState and the tls app.
func (t *tlsApp) Provision(ctx caddy.Context) error {
	st, err := loadTLSState(ctx, t.Instance)
	if err != nil {
		return fmt.Errorf("berth_tls: %w", err)
	}
	app, err := ctx.App("tls")
	if err != nil {
		return fmt.Errorf("berth_tls: %w", err)
	}
	t.st, t.tls = st, app.(*caddytls.TLS)
	return nil
}

// Start publishes the tls app.
func (t *tlsApp) Start() error {
	t.st.tls.Store(t.tls)
	return nil
}

// Stop withdraws it.
func (t *tlsApp) Stop() error {
	t.st.tls.CompareAndSwap(t.tls, nil)
	return nil
}

// tlsConfig is the part of the Caddy config that serves HTTPS: the tls
// app's automation policies, the pki app for the internal CA and the
// berth_tls app (added to apps), the HTTPS server for the http app, and
// the storage module (nil: Caddy's default).
func (r *Router) tlsConfig(instanceID string, handle []any, apps map[string]any) (httpsServer, storage map[string]any) {
	o := r.opts
	httpHost, httpPort, _ := net.SplitHostPort(o.HTTPAddr) // checked by New
	altHTTPPort, _ := strconv.Atoi(httpPort)

	permission := map[string]any{"module": "berth", "instance": instanceID}
	internal := map[string]any{"module": "internal"}
	var policies []any
	if o.InternalCA {
		policies = append(policies, map[string]any{"issuers": []any{internal}, "on_demand": true})
	} else {
		// certmagic starts a challenge server of its own only where nothing
		// listens; the router's listeners are there and answer (HTTP-01 on
		// the plain side, TLS-ALPN-01 in the HTTPS server's handshakes),
		// for challenges this router or another one with the same storage
		// started.
		httpsHost, httpsPort, _ := net.SplitHostPort(o.HTTPSAddr)
		challenges := map[string]any{"http": map[string]any{"alternate_port": altHTTPPort}}
		if httpHost == httpsHost {
			challenges["bind_host"] = httpHost
		}
		if o.DisableTLSALPNChallenge {
			challenges["tls-alpn"] = map[string]any{"disabled": true}
		} else {
			n, _ := strconv.Atoi(httpsPort)
			challenges["tls-alpn"] = map[string]any{"alternate_port": n}
		}
		acme := map[string]any{
			"module":     "acme",
			"ca":         cmp.Or(o.ACMECA, DefaultACMECA),
			"challenges": challenges,
		}
		if o.ACMEEmail != "" {
			acme["email"] = o.ACMEEmail
		}
		if len(o.ACMETrustedRootsFiles) > 0 {
			acme["trusted_roots_pem_files"] = o.ACMETrustedRootsFiles
		}
		policies = append(policies,
			// *.localhost never gets a public certificate.
			map[string]any{"subjects": []string{"localhost", "*.localhost"}, "issuers": []any{internal}, "on_demand": true},
			map[string]any{"issuers": []any{acme}, "on_demand": true},
		)
	}
	apps["tls"] = map[string]any{
		"automation": map[string]any{
			"on_demand": map[string]any{"permission": permission},
			"policies":  policies,
		},
	}
	apps["pki"] = map[string]any{"certificate_authorities": map[string]any{
		"local": map[string]any{"install_trust": false},
	}}
	apps["berth_tls"] = &tlsApp{Instance: instanceID}
	httpsServer = r.caddyServer(o.HTTPSAddr, handle)
	// One policy, no matchers: every handshake gets its certificate from
	// the tls app's automation, i.e. on demand.
	httpsServer["tls_connection_policies"] = []any{map[string]any{}}
	if r.tls.storage != nil {
		storage = map[string]any{"module": "berth", "instance": instanceID}
	} else if o.DataDir != "" {
		storage = map[string]any{"module": "file_system", "root": o.DataDir}
	}
	return httpsServer, storage
}
