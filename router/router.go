package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy" // the reverse_proxy frontend
	_ "github.com/caddyserver/caddy/v2/modules/caddypki"               // the internal CA
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"            // DataDir
	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Frontend chooses what accepts client connections and proxies them. All
// three read the same table; bench/router measures them side by side.
type Frontend string

const (
	// FrontendBerth: the berth app serves HTTP itself with its lean proxy
	// (no caddyhttp server on the path). The fastest.
	FrontendBerth Frontend = "berth"
	// FrontendCaddy: Caddy's http app accepts connections; the
	// http.handlers.berth handler proxies with the lean proxy.
	FrontendCaddy Frontend = "caddy"
	// FrontendReverseProxy: Caddy's http app and its stock reverse_proxy,
	// which takes upstreams from http.reverse_proxy.upstreams.berth.
	FrontendReverseProxy Frontend = "reverse_proxy"
)

// Options configure a Router. Zero durations take the defaults shown.
type Options struct {
	// HTTPAddr is where the router listens, e.g. ":80" or "127.0.0.1:0".
	HTTPAddr string
	// Source delivers routes. Required unless StateFile alone is wanted.
	Source Source
	// StateFile keeps the last table on disk (recommended).
	StateFile string
	// AppsDomain gives every app the host APP.<AppsDomain>.
	AppsDomain string
	// Logger gets the router's own events; default slog.Default().
	Logger *slog.Logger
	// AccessLog gets one JSON line per request; nil discards them.
	AccessLog io.Writer
	// Registry gets the router's metrics; nil makes a registry of its own.
	Registry *prometheus.Registry
	// Frontend defaults to FrontendBerth.
	Frontend Frontend

	DialTimeout             time.Duration // 2s: connecting to an upstream
	TryDuration             time.Duration // 3s: retrying connection failures on other upstreams
	FailDuration            time.Duration // 5s: passive health skips a failed upstream this long
	ReadTimeout             time.Duration // 60s: longest silence from an upstream, head or body (504 before the head)
	IdleConnTimeout         time.Duration // 60s: keeping an idle upstream connection
	MaxIdleConnsPerUpstream int           // 1024: idle keep-alive connections per upstream
	TrustedProxies          []netip.Prefix

	ReadHeaderTimeout time.Duration // 10s: slowloris guard
	IdleTimeout       time.Duration // 2m: idle client keep-alive connections
	MaxHeaderBytes    int           // 64 KiB: larger request heads get 431
	GracePeriod       time.Duration // 5s: Stop waits this long for requests in flight

	// CaddyLogLevel is the level of Caddy's own log (to stderr); default WARN.
	CaddyLogLevel string

	// HTTPSAddr, when set, serves HTTPS there, e.g. ":443": Caddy's http
	// server with the berth handler (HTTP/1.1 and HTTP/2), certificates
	// obtained on demand for names the route table routes, and only those.
	// HTTPAddr keeps serving plain HTTP with Frontend and answers ACME
	// HTTP-01 challenges. Routes with ForceHTTPS redirect there; routes
	// with HSTS get a Strict-Transport-Security header on HTTPS.
	HTTPSAddr string
	// ACMECA is the ACME directory URL; default DefaultACMECA (Let's
	// Encrypt production).
	ACMECA string
	// ACMEEmail is the ACME account's contact address (optional).
	ACMEEmail string
	// ACMETrustedRootsFiles are PEM files of CA certificates trusted when
	// talking to the ACME server, for a private ACME CA.
	ACMETrustedRootsFiles []string
	// DisableTLSALPNChallenge leaves HTTP-01 (on HTTPAddr's port) as the
	// only ACME challenge; by default TLS-ALPN-01 on HTTPSAddr's port is
	// offered too.
	DisableTLSALPNChallenge bool
	// InternalCA issues every certificate from Caddy's internal CA (for
	// --dev); names under .localhost always use it. Its root lives in the
	// certificate storage (pki/authorities/local/root.crt).
	InternalCA bool
	// CertStorage holds certificates, keys, ACME accounts, challenge tokens
	// and locks; routers sharing one storage share certificates and never
	// order the same one twice. Nil: Caddy's file storage in DataDir.
	CertStorage certmagic.Storage
	// DataDir is the file storage's directory when CertStorage is nil;
	// empty: Caddy's default (e.g. ~/.local/share/caddy).
	DataDir string
}

// Errors returned by Router.
var (
	ErrNotRunning = errors.New("router is not running")
	ErrCaddyBusy  = errors.New("another Caddy config is running in this process")
)

// Router is berth's router: a Caddy instance running the berth app. Caddy
// keeps one running config per process, so one Router runs at a time.
type Router struct {
	opts Options
	inst *instance
	tls  *tlsState // nil without HTTPSAddr
	cfg  []byte
}

// New checks opts and prepares the Caddy config; Start runs it.
func New(opts Options) (*Router, error) {
	if opts.HTTPAddr == "" {
		return nil, errors.New("router: HTTPAddr is required")
	}
	if opts.Source == nil && opts.StateFile == "" {
		return nil, errors.New("router: need a Source or a StateFile")
	}
	switch opts.Frontend {
	case "":
		opts.Frontend = FrontendBerth
	case FrontendBerth, FrontendCaddy, FrontendReverseProxy:
	default:
		return nil, fmt.Errorf("router: unknown frontend %q", opts.Frontend)
	}
	if opts.HTTPSAddr != "" {
		if _, _, err := net.SplitHostPort(opts.HTTPAddr); err != nil {
			return nil, fmt.Errorf("router: HTTPAddr %q: %w", opts.HTTPAddr, err)
		}
		_, port, err := net.SplitHostPort(opts.HTTPSAddr)
		if err != nil {
			return nil, fmt.Errorf("router: HTTPSAddr %q: %w", opts.HTTPSAddr, err)
		}
		if opts.HTTPSAddr == opts.HTTPAddr && port != "0" {
			return nil, errors.New("router: HTTPAddr and HTTPSAddr are the same")
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	inst := &instance{
		source:    opts.Source,
		logger:    opts.Logger,
		accessLog: opts.AccessLog,
		metrics:   newMetrics(opts.Registry),
	}
	r := &Router{opts: opts, inst: inst}
	id := registerInstance(inst)
	if opts.HTTPSAddr != "" {
		r.tls = &tlsState{storage: opts.CertStorage}
		_, port, _ := net.SplitHostPort(opts.HTTPSAddr)
		n, _ := strconv.Atoi(port)
		r.tls.httpsPort.Store(int32(n))
		registerTLSState(id, r.tls)
	}
	cfg, err := json.Marshal(r.caddyConfig(id))
	if err != nil {
		return nil, err
	}
	r.cfg = cfg
	return r, nil
}

// caddyConfig is the whole Caddy JSON config the Router runs. It never
// changes while the Router runs: routes live in the berth app's table.
func (r *Router) caddyConfig(instanceID string) map[string]any {
	o := r.opts
	berth := &App{
		Instance:                instanceID,
		StateFile:               o.StateFile,
		AppsDomain:              o.AppsDomain,
		DialTimeout:             caddy.Duration(o.DialTimeout),
		TryDuration:             caddy.Duration(o.TryDuration),
		FailDuration:            caddy.Duration(o.FailDuration),
		ReadTimeout:             caddy.Duration(o.ReadTimeout),
		IdleConnTimeout:         caddy.Duration(o.IdleConnTimeout),
		MaxIdleConnsPerUpstream: o.MaxIdleConnsPerUpstream,
		ReadHeaderTimeout:       caddy.Duration(o.ReadHeaderTimeout),
		IdleTimeout:             caddy.Duration(o.IdleTimeout),
		MaxHeaderBytes:          o.MaxHeaderBytes,
		GracePeriod:             caddy.Duration(o.GracePeriod),
	}
	for _, p := range o.TrustedProxies {
		berth.TrustedProxies = append(berth.TrustedProxies, p.String())
	}
	apps := map[string]any{"berth": berth}
	servers := map[string]any{}
	handle := r.handlers()
	switch o.Frontend {
	case FrontendBerth:
		berth.Listen = []string{o.HTTPAddr}
	case FrontendCaddy, FrontendReverseProxy:
		servers["berth"] = r.caddyServer(o.HTTPAddr, handle)
	}
	var storage map[string]any
	if r.tls != nil {
		// HTTPS is always Caddy's http server; the berth handler proxies
		// unless the reverse_proxy frontend was chosen.
		servers["berth_https"], storage = r.tlsConfig(instanceID, handle, apps)
	} else if len(servers) > 0 {
		// No certificates are managed without HTTPSAddr, so keep the tls
		// app from touching storage: no lock files, no background cleaning.
		apps["tls"] = map[string]any{"disable_storage_check": true, "disable_storage_clean": true}
	}
	if len(servers) > 0 {
		apps["http"] = map[string]any{
			"grace_period": durOr(caddy.Duration(o.GracePeriod), 5*time.Second).String(),
			"servers":      servers,
		}
	}
	level := o.CaddyLogLevel
	if level == "" {
		level = "WARN"
	}
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": level}}},
		"apps":    apps,
	}
	if storage != nil {
		cfg["storage"] = storage
	}
	return cfg
}

// handlers is the handler chain of the http app's servers: the berth
// handler, or (FrontendReverseProxy) the berth handler routing and Caddy's
// reverse_proxy proxying with upstreams from the berth table.
func (r *Router) handlers() []any {
	o := r.opts
	if o.Frontend != FrontendReverseProxy {
		return []any{map[string]any{"handler": "berth"}}
	}
	return []any{
		map[string]any{"handler": "berth", "next": true},
		map[string]any{
			"handler":           "reverse_proxy",
			"dynamic_upstreams": map[string]any{"source": "berth"},
			"transport": map[string]any{
				"protocol":     "http",
				"dial_timeout": durOr(caddy.Duration(o.DialTimeout), 2*time.Second).String(),
				"keep_alive": map[string]any{
					"max_idle_conns_per_host": max(o.MaxIdleConnsPerUpstream, 1024),
					"idle_timeout":            durOr(caddy.Duration(o.IdleConnTimeout), time.Minute).String(),
				},
			},
			"load_balancing": map[string]any{
				"selection_policy": map[string]any{"policy": "round_robin"},
				"try_duration":     durOr(caddy.Duration(o.TryDuration), 3*time.Second).String(),
				"try_interval":     "50ms",
				"retries":          3, // whichever ends first: all down is a quick 503
			},
			"health_checks": map[string]any{"passive": map[string]any{
				"fail_duration": durOr(caddy.Duration(o.FailDuration), 5*time.Second).String(),
			}},
		},
	}
}

// caddyServer is one server of Caddy's http app running handle.
func (r *Router) caddyServer(listen string, handle []any) map[string]any {
	o := r.opts
	maxHeader := o.MaxHeaderBytes
	if maxHeader == 0 {
		maxHeader = 64 << 10
	}
	return map[string]any{
		"listen":              []string{listen},
		"routes":              []any{map[string]any{"handle": handle}},
		"automatic_https":     map[string]any{"disable": true},
		"read_header_timeout": durOr(caddy.Duration(o.ReadHeaderTimeout), 10*time.Second).String(),
		"idle_timeout":        durOr(caddy.Duration(o.IdleTimeout), 2*time.Minute).String(),
		"max_header_bytes":    maxHeader,
		"protocols":           []string{"h1", "h2"},
	}
}

// Config returns the Caddy JSON config the Router runs.
func (r *Router) Config() []byte { return r.cfg }

// Start runs the router's Caddy config. It returns once the listener is up;
// the table comes from the state file (if any) and then the Source.
func (r *Router) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cur := caddy.ActiveContext(); cur.Context != nil {
		return ErrCaddyBusy
	}
	if err := caddy.Load(r.cfg, true); err != nil {
		return fmt.Errorf("router: start caddy: %w", err)
	}
	if r.inst.app.Load() == nil {
		caddy.Stop()
		return fmt.Errorf("router: berth app did not start")
	}
	if r.tls != nil && r.tls.httpsPort.Load() == 0 {
		// Port 0 (tests): redirects name the port the kernel chose.
		if _, p, err := net.SplitHostPort(r.HTTPSAddr()); err == nil {
			n, _ := strconv.Atoi(p)
			r.tls.httpsPort.Store(int32(n))
		}
	}
	return nil
}

// Stop stops Caddy: listeners close, requests in flight get GracePeriod to
// finish, upgraded connections close, goroutines end. If ctx ends first,
// Stop returns its error while shutdown goes on in the background.
func (r *Router) Stop(ctx context.Context) error {
	if r.inst.app.Load() == nil {
		return nil // not running (or already stopped): never stop another config
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		caddy.Stop()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("router: stop: %w", ctx.Err())
	}
}

// Table returns the table being served, or nil when the router is not running.
func (r *Router) Table() *Table {
	if a := r.inst.app.Load(); a != nil {
		return a.Table()
	}
	return nil
}

// Addr returns the address the router listens on (useful with port 0).
func (r *Router) Addr() string {
	a := r.inst.app.Load()
	if a == nil {
		return ""
	}
	if addrs := a.listenAddrs(); len(addrs) > 0 {
		return addrs[0]
	}
	return serverAddr("berth")
}

// HTTPSAddr returns the address HTTPS is served on, "" without HTTPSAddr.
func (r *Router) HTTPSAddr() string {
	if r.tls == nil || r.inst.app.Load() == nil {
		return ""
	}
	return serverAddr("berth_https")
}

// serverAddr is the first listener of one of the http app's servers.
func serverAddr(name string) string {
	cur := caddy.ActiveContext()
	if cur.Context == nil {
		return ""
	}
	app, err := cur.AppIfConfigured("http")
	if err != nil {
		return ""
	}
	if srv := app.(*caddyhttp.App).Servers[name]; srv != nil {
		if lns := srv.Listeners(); len(lns) > 0 {
			return lns[0].Addr().String()
		}
	}
	return ""
}

// WaitForRelease blocks until the router serves release of app (the
// cutover is live: new requests go to that release's upstreams), or ctx
// ends. The deployer calls it before draining the old release.
func (r *Router) WaitForRelease(ctx context.Context, app string, release uint64) error {
	for {
		a := r.inst.app.Load()
		if a == nil {
			return ErrNotRunning
		}
		t := a.Table()
		if rt := t.apps[app]; rt != nil && rt.Release == release {
			return nil
		}
		select {
		case <-t.superseded:
		case <-a.done:
		case <-ctx.Done():
			have := "none"
			if rt := t.apps[app]; rt != nil {
				have = fmt.Sprint(rt.Release)
			}
			return fmt.Errorf("router: wait for %s release %d (serving %s): %w", app, release, have, ctx.Err())
		}
	}
}

// Registry is the router's metrics registry.
func (r *Router) Registry() *prometheus.Registry { return r.inst.metrics.reg }

// MetricsHandler serves the router's metrics in the Prometheus format.
func (r *Router) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(r.inst.metrics.reg, promhttp.HandlerOpts{})
}
