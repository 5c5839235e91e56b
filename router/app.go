package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule((*App)(nil))
}

// App is the "berth" Caddy app. It owns the route table and the goroutines
// that keep it current; handlers and the upstream source read the table
// through it. Everything it needs from Go (the Source, loggers, the metrics
// registry) comes through Instance; everything else is plain JSON.
type App struct {
	// Instance names the Go-side half of a Router (see instance.go). Empty
	// means a JSON-only config: routes then come from RoutesFile.
	Instance string `json:"instance,omitempty"`
	// RoutesFile is a JSON file of []Route, watched for changes, used when
	// there is no Instance.
	RoutesFile string `json:"routes_file,omitempty"`
	// StateFile keeps the last route table; loaded at start when the source
	// has not answered yet.
	StateFile string `json:"state_file,omitempty"`
	// AppsDomain gives every app the host APP.<AppsDomain>.
	AppsDomain string `json:"apps_domain,omitempty"`
	// Listen, when set, makes the App serve HTTP itself on these addresses
	// (the lean frontend) instead of through the http app.
	Listen []string `json:"listen,omitempty"`

	// DialTimeout bounds connecting to an upstream (default 2s).
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// TryDuration bounds retrying connection failures on other upstreams (3s).
	TryDuration caddy.Duration `json:"try_duration,omitempty"`
	// FailDuration is how long passive health skips a failed upstream (5s).
	FailDuration caddy.Duration `json:"fail_duration,omitempty"`
	// ReadTimeout is the longest silence from an upstream, head or body (60s).
	ReadTimeout caddy.Duration `json:"read_timeout,omitempty"`
	// IdleConnTimeout is how long an idle upstream connection is kept (60s).
	IdleConnTimeout caddy.Duration `json:"idle_conn_timeout,omitempty"`
	// MaxIdleConnsPerUpstream caps the keep-alive pool of one upstream (1024).
	MaxIdleConnsPerUpstream int `json:"max_idle_conns_per_upstream,omitempty"`
	// TrustedProxies are CIDRs whose X-Forwarded-* headers are kept.
	TrustedProxies []string `json:"trusted_proxies,omitempty"`

	// ReadHeaderTimeout bounds reading a request head, lean frontend (10s).
	ReadHeaderTimeout caddy.Duration `json:"read_header_timeout,omitempty"`
	// IdleTimeout closes idle client connections, lean frontend (2m).
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// MaxHeaderBytes caps a request head, lean frontend (64 KiB).
	MaxHeaderBytes int `json:"max_header_bytes,omitempty"`
	// GracePeriod is how long Stop lets requests finish, lean frontend (5s).
	GracePeriod caddy.Duration `json:"grace_period,omitempty"`

	table    atomic.Pointer[Table]
	inst     *instance
	src      Source
	logger   *slog.Logger
	access   *accessLog
	metrics  *metrics
	proxyCfg *proxyConfig

	buildMu sync.Mutex
	ups     map[string]*upstream // every upstream in the current table
	live    atomic.Bool          // the source has delivered at least once

	cancel    context.CancelFunc
	done      chan struct{} // closed by Stop
	wg        sync.WaitGroup
	frontends []*frontend
	stopOnce  sync.Once

	upMu     sync.Mutex
	upgraded map[net.Conn]net.Conn // open upgraded connections: client → upstream
	stopping bool
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ http.Handler       = (*App)(nil)
)

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "berth", New: func() caddy.Module { return new(App) }}
}

// Provision resolves the Instance, applies defaults and loads the state
// file, so the app can serve the last known table before its source answers.
func (a *App) Provision(ctx caddy.Context) error {
	if a.Instance != "" {
		mod, err := ctx.LoadModuleByID(instanceModulePrefix+a.Instance, nil)
		if err != nil {
			return fmt.Errorf("berth: router instance %s: %w", a.Instance, err)
		}
		a.inst = mod.(*instanceModule).inst
		if a.inst == nil {
			return fmt.Errorf("berth: router instance %s is gone", a.Instance)
		}
	} else {
		a.inst = &instance{logger: ctx.Slogger(), accessLog: os.Stdout, metrics: newMetrics(nil)}
		if a.RoutesFile != "" {
			a.inst.source = &FileSource{Path: a.RoutesFile}
		}
	}
	a.src = a.inst.source
	a.logger = a.inst.logger
	if a.logger == nil {
		a.logger = ctx.Slogger()
	}
	a.metrics = a.inst.metrics
	a.access = newAccessLog(a.inst.accessLog)

	cfg := defaultProxyConfig()
	setDur(&cfg.dialTimeout, a.DialTimeout)
	setDur(&cfg.tryDuration, a.TryDuration)
	setDur(&cfg.failDuration, a.FailDuration)
	setDur(&cfg.readTimeout, a.ReadTimeout)
	setDur(&cfg.idleConnTimeout, a.IdleConnTimeout)
	if a.MaxIdleConnsPerUpstream > 0 {
		cfg.maxIdlePerUpstream = a.MaxIdleConnsPerUpstream
	}
	for _, s := range a.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("berth: trusted proxy %q: %w", s, err)
		}
		cfg.trustedProxies = append(cfg.trustedProxies, p)
	}
	a.proxyCfg = cfg
	a.ups = map[string]*upstream{}
	a.done = make(chan struct{})
	a.upgraded = map[net.Conn]net.Conn{}

	empty, _ := buildTable(nil, a.AppsDomain, nil, nil)
	a.table.Store(empty)
	if a.StateFile != "" {
		routes, saved, err := loadState(a.StateFile)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			a.logger.Warn("berth router: ignoring unreadable state file", "file", a.StateFile, "err", err)
		default:
			a.apply(routes, false)
			a.logger.Info("berth router: serving routes from the state file until the source answers",
				"file", a.StateFile, "routes", len(routes), "saved", saved)
		}
	}
	return nil
}

func setDur(dst *time.Duration, d caddy.Duration) {
	if d > 0 {
		*dst = time.Duration(d)
	}
}

// Validate checks the config.
func (a *App) Validate() error {
	if a.src == nil && a.StateFile == "" {
		return errors.New("berth: no route source and no state file: the router would never have routes")
	}
	return nil
}

// Start runs the source watcher, the access-log flusher and, in the lean
// frontend, the HTTP servers.
func (a *App) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	for _, addr := range a.Listen {
		if err := a.listen(addr); err != nil {
			a.Stop()
			return err
		}
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.access.run(ctx)
	}()
	if a.src != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.watch(ctx)
		}()
	}
	a.inst.app.Store(a)
	return nil
}

// listen starts the lean frontend on one address.
func (a *App) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("berth: listen %s: %w", addr, err)
	}
	f := newFrontend(a, ln)
	a.frontends = append(a.frontends, f)
	f.start()
	return nil
}

func durOr(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}

// listenAddrs returns the lean frontend's bound addresses.
func (a *App) listenAddrs() []string {
	out := make([]string, len(a.frontends))
	for i, f := range a.frontends {
		out[i] = f.ln.Addr().String()
	}
	return out
}

// Stop ends the goroutines Start began, closes upgraded connections and
// drains the lean frontend for up to GracePeriod.
func (a *App) Stop() error {
	a.stopOnce.Do(func() {
		if a.inst == nil { // Provision failed early
			return
		}
		a.inst.app.CompareAndSwap(a, nil)
		close(a.done)
		if a.cancel != nil {
			a.cancel()
		}
		grace := durOr(a.GracePeriod, 5*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		var wg sync.WaitGroup
		for _, f := range a.frontends {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.shutdown(ctx)
			}()
		}
		a.closeUpgraded()
		wg.Wait()
		a.wg.Wait()
		a.access.flush()
		a.buildMu.Lock()
		for _, u := range a.ups {
			u.retire()
		}
		a.buildMu.Unlock()
	})
	return nil
}

// Cleanup releases what Provision took when Start never ran.
func (a *App) Cleanup() error { return a.Stop() }

// trackUpgrade records (add) or forgets an upgraded connection; it refuses
// new ones once the App is stopping.
func (a *App) trackUpgrade(client, up net.Conn, add bool) bool {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if !add {
		delete(a.upgraded, client)
		return true
	}
	if a.stopping {
		return false
	}
	a.upgraded[client] = up
	return true
}

func (a *App) closeUpgraded() {
	a.upMu.Lock()
	a.stopping = true
	conns := a.upgraded
	a.upgraded = map[net.Conn]net.Conn{}
	a.upMu.Unlock()
	for c, u := range conns {
		c.Close()
		u.Close()
	}
}

// watch keeps the table current from the source, retrying with backoff
// when it fails; the last table keeps serving meanwhile.
func (a *App) watch(ctx context.Context) {
	const maxBackoff = 5 * time.Second
	backoff := 100 * time.Millisecond
	for {
		err := a.src.Watch(ctx, func(routes []Route) {
			backoff = 100 * time.Millisecond
			a.apply(routes, true)
		})
		if ctx.Err() != nil {
			return
		}
		a.metrics.sourceErrors.Inc()
		a.logger.Warn("berth router: route source failed; serving the last table", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// apply builds a table from a snapshot and swaps it in: one atomic store,
// so a request sees the old table or the new one. Upstreams that left are
// retired (idle connections closed, busy ones closed when their request
// ends). A live snapshot is then saved to the state file.
func (a *App) apply(routes []Route, live bool) {
	a.buildMu.Lock()
	defer a.buildMu.Unlock()
	fresh := map[string]*upstream{}
	t, err := buildTable(routes, a.AppsDomain,
		func(addr string) *upstream {
			u := a.ups[addr]
			if u == nil {
				u = newUpstream(addr, a.proxyCfg)
			}
			fresh[addr] = u
			return u
		},
		a.metrics.forApp)
	if err != nil {
		a.logger.Warn("berth router: some routes were left out", "err", err)
	}
	if live && a.live.Load() && equalRoutes(t.Routes(), a.table.Load().Routes()) {
		return // the source repeated itself: nothing to swap or save
	}
	if live {
		// Before the swap: whoever sees the source's table sees source_live.
		a.live.Store(true)
		a.metrics.sourceLive.Set(1)
	}
	old := a.table.Swap(t)
	if old != nil {
		close(old.superseded)
	}
	for addr, u := range a.ups {
		if fresh[addr] == nil {
			u.retire()
		}
	}
	a.ups = fresh
	a.metrics.swaps.Inc()
	a.metrics.routes.Set(float64(t.Len()))
	if live && a.StateFile != "" {
		if err := saveState(a.StateFile, t.Routes()); err != nil {
			a.logger.Warn("berth router: could not save the state file", "file", a.StateFile, "err", err)
		}
	}
}

// Table returns the current route table.
func (a *App) Table() *Table { return a.table.Load() }
