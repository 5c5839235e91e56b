package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	consul "github.com/hashicorp/consul/api"
)

// ControlPlaneSource is the Source of a real router: the route table from
// the control plane's blocking query GET /v1/routes (a change arrives in
// milliseconds, not on a polling interval), and, for apps of the nomad
// runtime, upstreams from Consul health (passing checks only, one blocking
// query per service and release). After each table it applies, it reports
// the table's index back to the control plane, so the deployer knows when
// every router serves a cutover.
type ControlPlaneSource struct {
	// Servers reach the control plane with a token allowed to route
	// traffic (role router or admin). Their clients should have no overall
	// timeout: blocking queries last up to WaitTime.
	Servers *Servers
	// Consul answers health queries for nomad apps; nil: such apps have no
	// upstreams (and a warning is logged).
	Consul *consul.Client
	// ID and Name identify this router in its reports.
	ID, Name string
	// WaitTime bounds one blocking query (default 5 minutes).
	WaitTime time.Duration
	// FirstAnswerWait bounds how long a new table waits for the first
	// answer of the Consul queries it starts (default 2 s), so a cutover
	// on nomad does not go live before the new release's upstreams are
	// known.
	FirstAnswerWait time.Duration
	Logger          *slog.Logger
}

var _ Source = (*ControlPlaneSource)(nil)

type serviceKey struct{ service, tag string }

type serviceAnswer struct {
	key   serviceKey
	addrs []string
}

// Watch implements Source.
func (s *ControlPlaneSource) Watch(ctx context.Context, fn func([]Route)) error {
	if s.Servers == nil {
		return errors.New("control-plane source: no servers")
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	tables := make(chan *api.RouteTable)
	answers := make(chan serviceAnswer)
	applied := make(chan uint64, 1)
	errc := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		errc <- s.pollRoutes(ctx, tables)
	}()
	go func() {
		defer wg.Done()
		s.report(ctx, applied, log)
	}()

	type watcher struct {
		cancel context.CancelFunc
		addrs  []string
		known  bool
	}
	watchers := map[serviceKey]*watcher{}
	defer func() {
		for _, w := range watchers {
			w.cancel()
		}
	}()
	var cur *api.RouteTable
	var firstWait <-chan time.Time // set while new Consul queries have not answered
	warned := false
	emit := func() {
		routes := make([]Route, 0, len(cur.Routes))
		for _, r := range cur.Routes {
			rt := Route{App: r.App, Release: r.Release, Hosts: slices.Clone(r.Hosts),
				ForceHTTPS: r.ForceHTTPS, HSTS: r.HSTS, LB: r.LB, Upstreams: r.Upstreams}
			if cur.AppsDomain != "" {
				rt.Hosts = append(rt.Hosts, r.App+"."+cur.AppsDomain)
			}
			if r.Service != "" {
				if w := watchers[serviceKey{r.Service, r.Tag}]; w != nil {
					rt.Upstreams = w.addrs
				}
			}
			routes = append(routes, rt)
		}
		fn(routes)
		select { // keep only the newest index for the reporter
		case <-applied:
		default:
		}
		applied <- cur.Index
	}
	pending := func() bool {
		for _, w := range watchers {
			if !w.known {
				return true
			}
		}
		return false
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case t := <-tables:
			cur = t
			want := map[serviceKey]bool{}
			for _, r := range t.Routes {
				if r.Service != "" {
					want[serviceKey{r.Service, r.Tag}] = true
				}
			}
			if len(want) > 0 && s.Consul == nil && !warned {
				warned = true
				log.Warn("berth router: apps of the nomad runtime need Consul (--consul-addr); they have no upstreams")
			}
			for k, w := range watchers {
				if !want[k] {
					w.cancel()
					delete(watchers, k)
				}
			}
			if s.Consul != nil {
				for k := range want {
					if watchers[k] != nil {
						continue
					}
					wctx, wcancel := context.WithCancel(ctx)
					watchers[k] = &watcher{cancel: wcancel}
					wg.Add(1)
					go func() {
						defer wg.Done()
						s.watchService(wctx, k, answers, log)
					}()
				}
			}
			if pending() {
				wait := s.FirstAnswerWait
				if wait == 0 {
					wait = 2 * time.Second
				}
				firstWait = time.After(wait)
				continue
			}
			firstWait = nil
			emit()
		case a := <-answers:
			w := watchers[a.key]
			if w == nil {
				continue // a query we no longer want
			}
			if w.known && slices.Equal(w.addrs, a.addrs) {
				continue
			}
			w.addrs, w.known = a.addrs, true
			if cur == nil || (firstWait != nil && pending()) {
				continue
			}
			firstWait = nil
			emit()
		case <-firstWait:
			firstWait = nil
			log.Warn("berth router: Consul did not answer in time for every service; going live without them")
			emit()
		}
	}
}

// pollRoutes runs the blocking query on the route table and sends every
// changed table. It returns the first error (the App retries with backoff).
func (s *ControlPlaneSource) pollRoutes(ctx context.Context, out chan<- *api.RouteTable) error {
	wait := s.WaitTime
	if wait == 0 {
		wait = 5 * time.Minute
	}
	var index uint64
	for {
		var t *api.RouteTable
		var meta *api.QueryMeta
		err := s.Servers.Do(ctx, func(c *api.Client) error {
			var err error
			t, meta, err = c.Routes(ctx, &api.QueryOptions{Stale: true, WaitIndex: index, WaitTime: wait})
			return err
		})
		if err != nil {
			return fmt.Errorf("read routes from %v: %w", s.Servers.Addrs(), err)
		}
		if meta.LastIndex < index {
			index = 0 // the server's state went back (restored snapshot): start over
		}
		if meta.LastIndex == index {
			continue // the wait ended without a change
		}
		index = meta.LastIndex
		t.Index = index
		select {
		case out <- t:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchService follows the passing instances of one Consul service and tag
// and sends every change.
func (s *ControlPlaneSource) watchService(ctx context.Context, k serviceKey, out chan<- serviceAnswer, log *slog.Logger) {
	wait := s.WaitTime
	if wait == 0 {
		wait = 5 * time.Minute
	}
	var index uint64
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		q := (&consul.QueryOptions{WaitIndex: index, WaitTime: wait, AllowStale: true}).WithContext(ctx)
		entries, meta, err := s.Consul.Health().Service(k.service, k.tag, true, q)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("berth router: Consul health query failed; keeping the last upstreams", "service", k.service, "tag", k.tag, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		addrs := []string{}
		for _, e := range entries {
			host := e.Service.Address
			if host == "" {
				host = e.Node.Address
			}
			addrs = append(addrs, net.JoinHostPort(host, strconv.Itoa(e.Service.Port)))
		}
		slices.Sort(addrs)
		select {
		case out <- serviceAnswer{key: k, addrs: addrs}:
		case <-ctx.Done():
			return
		}
	}
}

// report tells the control plane which table index this router serves:
// after each applied table and every RouterReportInterval.
func (s *ControlPlaneSource) report(ctx context.Context, applied <-chan uint64, log *slog.Logger) {
	if s.ID == "" {
		return
	}
	tick := time.NewTicker(api.RouterReportInterval)
	defer tick.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case last = <-applied:
		case <-tick.C:
			if last == 0 {
				continue
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Servers.Do(rctx, func(c *api.Client) error {
			return c.ReportRouter(rctx, s.ID, api.RouterReport{Name: s.Name, Applied: last})
		})
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn("berth router: report to the control plane failed", "err", err)
		}
	}
}
