package router

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Table is an immutable route table: host → app → active release →
// upstreams. The App holds the current one in an atomic.Pointer and replaces
// it whole, so a request sees either the old table or the new one, never a
// mix. Counters inside (round-robin position, upstream state) are atomics
// shared with the tables before and after.
type Table struct {
	routes []*route          // sorted by app name
	apps   map[string]*route // app name → route
	exact  map[string]*route // "example.com" → route
	wild   map[string]*route // "*.example.com" is stored under "example.com"

	// superseded is closed when a newer table replaces this one, so waiters
	// (WaitForRelease) need no polling.
	superseded chan struct{}
}

// route is a Route plus what serving it needs.
type route struct {
	Route
	ups     []*upstream
	rr      atomic.Uint64
	metrics *appMetrics
}

// NewTable builds a table from a snapshot. appsDomain, when not empty, gives
// every app the host APP.<appsDomain>. Invalid routes and hosts claimed by
// two apps are left out and reported in the error; the table holds the rest.
func NewTable(routes []Route, appsDomain string) (*Table, error) {
	return buildTable(routes, appsDomain, nil, nil)
}

// upstreamFor and metricsFor let the App share state across tables; nil
// makes fresh state (tests, NewTable).
type upstreamFunc func(addr string) *upstream
type metricsFunc func(app string) *appMetrics

func buildTable(routes []Route, appsDomain string, upstreamFor upstreamFunc, metricsFor metricsFunc) (*Table, error) {
	if upstreamFor == nil {
		cfg := defaultProxyConfig()
		upstreamFor = func(addr string) *upstream { return newUpstream(addr, cfg) }
	}
	appsDomain = strings.TrimSuffix(strings.ToLower(appsDomain), ".")
	t := &Table{
		apps:       make(map[string]*route, len(routes)),
		exact:      make(map[string]*route, 2*len(routes)),
		wild:       map[string]*route{},
		superseded: make(chan struct{}),
	}
	var problems []string
	sorted := slices.Clone(routes)
	slices.SortStableFunc(sorted, func(a, b Route) int { return cmp.Compare(a.App, b.App) })
	for _, r := range sorted {
		if err := r.Validate(); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if _, dup := t.apps[r.App]; dup {
			problems = append(problems, fmt.Sprintf("app %s: listed twice; the first entry wins", r.App))
			continue
		}
		rt := &route{Route: r.clone()}
		if rt.LB == "" {
			rt.LB = LBRoundRobin
		}
		hosts := slices.Clone(rt.Hosts)
		if appsDomain != "" {
			hosts = append(hosts, r.App+"."+appsDomain)
		}
		for _, h := range hosts {
			h, _ = normalizeRouteHost(h)
			m, key := t.exact, h
			if rest, ok := strings.CutPrefix(h, "*."); ok {
				m, key = t.wild, rest
			}
			if other, taken := m[key]; taken {
				if other != rt {
					problems = append(problems, fmt.Sprintf("host %s: claimed by %s and %s; %s keeps it", h, other.App, r.App, other.App))
				}
				continue
			}
			m[key] = rt
		}
		seen := map[string]bool{}
		for _, addr := range rt.Upstreams {
			if !seen[addr] {
				seen[addr] = true
				rt.ups = append(rt.ups, upstreamFor(addr))
			}
		}
		if metricsFor != nil {
			rt.metrics = metricsFor(r.App)
		}
		t.apps[r.App] = rt
		t.routes = append(t.routes, rt)
	}
	if len(problems) > 0 {
		return t, fmt.Errorf("%w: %s", ErrInvalidRoute, strings.Join(problems, "; "))
	}
	return t, nil
}

// lookup finds the route for a normalized request host: an exact host
// first, then a wildcard one label up (*.example.com matches
// a.example.com, not a.b.example.com, as in TLS certificates).
func (t *Table) lookup(host string) *route {
	if t == nil {
		return nil
	}
	if rt := t.exact[host]; rt != nil {
		return rt
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		return t.wild[host[i+1:]]
	}
	return nil
}

// Lookup returns the route serving a request Host header (any case, with or
// without a port).
func (t *Table) Lookup(host string) (Route, bool) {
	rt := t.lookup(requestHost(host))
	if rt == nil {
		return Route{}, false
	}
	return rt.Route.clone(), true
}

// App returns the route of an app by name.
func (t *Table) App(name string) (Route, bool) {
	if t == nil {
		return Route{}, false
	}
	rt, ok := t.apps[name]
	if !ok {
		return Route{}, false
	}
	return rt.Route.clone(), true
}

// Routes returns a copy of every route, sorted by app name.
func (t *Table) Routes() []Route {
	if t == nil {
		return nil
	}
	out := make([]Route, len(t.routes))
	for i, rt := range t.routes {
		out[i] = rt.Route.clone()
	}
	return out
}

// Len is the number of apps in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.routes)
}

// addrs is every upstream address the table routes to.
func (t *Table) addrs() map[string]bool {
	m := map[string]bool{}
	if t == nil {
		return m
	}
	for _, rt := range t.routes {
		for _, u := range rt.ups {
			m[u.addr] = true
		}
	}
	return m
}

// pick chooses an upstream for one attempt, skipping those in tried and,
// while any healthy one is left, those passive health marked down.
func (rt *route) pick(now int64, tried []*upstream) *upstream {
	n := len(rt.ups)
	if n == 0 {
		return nil
	}
	if n == 1 {
		if u := rt.ups[0]; !slices.Contains(tried, u) {
			return u
		}
		return nil
	}
	start := int(rt.rr.Add(1) % uint64(n))
	var best, fallback *upstream
	for i := range n {
		u := rt.ups[(start+i)%n]
		if slices.Contains(tried, u) {
			continue
		}
		if !u.healthy(now) {
			if fallback == nil {
				fallback = u
			}
			continue
		}
		if rt.LB != LBLeastConn {
			return u
		}
		if best == nil || u.inflight.Load() < best.inflight.Load() {
			best = u
		}
	}
	if best != nil {
		return best
	}
	return fallback
}
