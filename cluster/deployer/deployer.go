// Package deployer drives deploys on the leader: for each queued deploy it
// starts the new release next to the old one, waits until every new
// instance passes its health check, cuts over (the release becomes active
// in one raft write that routers watch), waits for the routers, then drains
// and stops the old release. Each step is recorded in raft, so a new leader
// resumes a deploy where the old one left it. A release that does not become
// healthy within the app's deadline is removed and the old one keeps
// serving; the deploy fails with the reason.
//
// Between deploys it reconciles: every app's active release is started
// again (idempotently) so a killed instance is replaced and a changed
// formation applied.
package deployer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/berthpaas/berth/scheduler"
	"github.com/hashicorp/go-memdb"
)

// restartEvery is how often a deploy waiting for health starts its release
// again (idempotently).
const restartEvery = 5 * time.Second

// Config wires a deployer.
type Config struct {
	Runtime scheduler.Runtime
	State   func() *state.Store
	Apply   func(context.Context, fsm.Command) (uint64, error)
	Keyring func() *secrets.Keyring
	Logger  *slog.Logger
	// Drain is how long old instances keep finishing requests after they
	// left the router, before SIGTERM (default 2 s).
	Drain time.Duration
	// Reconcile is how often active releases are re-applied (default 5 s).
	Reconcile time.Duration
	// RouterAck, if set, waits until every live router serves the app's new
	// active release (or its own bounded timeout) before the old release is
	// drained.
	RouterAck func(ctx context.Context, app string, release uint64) error
}

// Deployer runs while its server is leader.
type Deployer struct {
	cfg Config

	mu     sync.Mutex
	active map[string]bool // apps with a deploy goroutine running
	wg     sync.WaitGroup
	// wake makes Run look again when an app's goroutine ends, so the next
	// queued deploy starts at once.
	wake chan struct{}
}

// New returns a deployer.
func New(cfg Config) *Deployer {
	if cfg.Drain == 0 {
		cfg.Drain = 2 * time.Second
	}
	if cfg.Reconcile == 0 {
		cfg.Reconcile = 5 * time.Second
	}
	return &Deployer{cfg: cfg, active: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Run drives deploys and reconciles until ctx ends (leadership lost), then
// waits for its goroutines.
func (d *Deployer) Run(ctx context.Context) {
	defer d.wg.Wait()
	var lastApps uint64
	reconcileAt := time.Now()
	for {
		store := d.cfg.State()
		snap := store.Snapshot()
		ws := memdb.NewWatchSet()
		ws.Add(store.AbandonCh())
		deploys, _, err := snap.Deploys(ws, "")
		if err != nil {
			d.cfg.Logger.Error("list deploys", "err", err)
		}
		busy := map[string]bool{}
		for _, dep := range oldestOpen(deploys) {
			busy[dep.App] = true
			id := dep.ID
			d.spawn(dep.App, func() {
				if err := d.deploy(ctx, id); err != nil && ctx.Err() == nil {
					d.cfg.Logger.Warn("deploy", "deploy", id, "err", err)
				}
			})
		}
		apps, appsIdx, err := snap.Apps(ws)
		if err == nil && (appsIdx != lastApps || time.Now().After(reconcileAt)) {
			lastApps, reconcileAt = appsIdx, time.Now().Add(d.cfg.Reconcile)
			for _, app := range apps {
				if !busy[app.Name] && app.ActiveRelease > 0 {
					d.spawn(app.Name, func() { d.reconcile(ctx, snap, app) })
				}
			}
		}
		wctx, cancel := context.WithDeadline(ctx, reconcileAt)
		go func() {
			select {
			case <-d.wake:
				cancel()
			case <-wctx.Done():
			}
		}()
		ws.WatchCtx(wctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// oldestOpen returns, per app, its oldest deploy that is not final: deploys
// of an app run one at a time, in order.
func oldestOpen(deploys []*state.Deploy) []*state.Deploy {
	first := map[string]*state.Deploy{}
	for _, dep := range deploys {
		if state.DeployFinal(dep.State) {
			continue
		}
		if f, ok := first[dep.App]; !ok || dep.CreateIndex < f.CreateIndex {
			first[dep.App] = dep
		}
	}
	out := make([]*state.Deploy, 0, len(first))
	for _, dep := range first {
		out = append(out, dep)
	}
	return out
}

// spawn runs f in a goroutine unless one already works on app: an app's
// deploys and reconciles never overlap.
func (d *Deployer) spawn(app string, f func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active[app] {
		return
	}
	d.active[app] = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			d.mu.Lock()
			delete(d.active, app)
			d.mu.Unlock()
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}()
		f()
	}()
}

// advance records a deploy step.
func (d *Deployer) advance(ctx context.Context, id, st, note string) error {
	_, err := d.cfg.Apply(ctx, fsm.Deploy{ID: id, State: st, Note: note, Time: time.Now().UTC()})
	return err
}

// deploy runs one deploy from its recorded state to a final one.
func (d *Deployer) deploy(ctx context.Context, id string) error {
	snap := d.cfg.State().Snapshot()
	dep, err := snap.Deploy(nil, id)
	if err != nil {
		return err
	}
	app, _, err := snap.App(nil, dep.App)
	if err != nil {
		return err
	}
	rel, _, err := snap.Release(nil, dep.App, dep.To)
	if err != nil {
		return err
	}
	spec, err := Spec(app, rel, d.cfg.Keyring())
	if err != nil {
		return d.fail(ctx, dep, scheduler.Release{}, err.Error())
	}
	log := d.cfg.Logger.With("app", dep.App, "release", dep.To)
	switch dep.State {
	case state.DeployPending, state.DeployStarting:
		if dep.State == state.DeployPending {
			if err := d.advance(ctx, id, state.DeployStarting, ""); err != nil {
				return err
			}
		}
		log.Info("deploy: starting new instances")
		if err := d.cfg.Runtime.Start(ctx, spec); err != nil {
			if errors.Is(err, scheduler.ErrUnavailable) {
				return err // Nomad or Consul is down: the deploy stays queued and is retried
			}
			return d.fail(ctx, dep, spec, fmt.Sprintf("start instances: %v", err))
		}
		timeout := app.DeployTimeout
		if timeout == 0 {
			timeout = DefaultDeployTimeout
		}
		insts, reason, err := d.waitHealthy(ctx, spec, timeout)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, scheduler.ErrUnavailable) {
				return err // leadership lost or runtime down: resumed or retried later
			}
			return d.fail(ctx, dep, spec, reason)
		}
		// Routers learn the new release's upstreams before it becomes
		// active, so the switch is one step for them.
		if err := d.publish(ctx, dep.App, dep.To, insts); err != nil {
			return err
		}
		if err := d.advance(ctx, id, state.DeployCutover, ""); err != nil {
			return err
		}
		fallthrough
	case state.DeployCutover:
		if d.cfg.RouterAck != nil {
			if err := d.cfg.RouterAck(ctx, dep.App, dep.To); err != nil {
				log.Warn("routers did not all acknowledge the cutover in time", "err", err)
			}
		}
		if err := d.advance(ctx, id, state.DeployDraining, ""); err != nil {
			return err
		}
		fallthrough
	case state.DeployDraining:
		dep, _ = d.cfg.State().Snapshot().Deploy(nil, id)
		if err := d.stopOld(ctx, dep); err != nil {
			return err
		}
		return d.advance(ctx, id, state.DeployDone, "")
	}
	return nil
}

// stopOld stops every release of the app other than the deploy's target:
// the one it replaced, and any left over from failed leaders.
func (d *Deployer) stopOld(ctx context.Context, dep *state.Deploy) error {
	insts, err := d.cfg.Runtime.Instances(ctx, dep.App)
	if err != nil {
		return err
	}
	old := map[uint64]bool{}
	for _, i := range insts {
		if i.Release != dep.To {
			old[i.Release] = true
		}
	}
	if !d.discovers() {
		eps, _, err := d.cfg.State().Snapshot().Endpoints(nil)
		if err != nil {
			return err
		}
		for v := range eps[dep.App] {
			if v != dep.To {
				old[v] = true
			}
		}
	}
	for v := range old {
		// Its upstreams left the routers at cutover (the route names the
		// active release only); forget them, then drain and stop.
		if err := d.publish(ctx, dep.App, v, nil); err != nil {
			return err
		}
		if err := d.cfg.Runtime.StopRelease(ctx, dep.App, v, d.cfg.Drain); err != nil {
			return fmt.Errorf("stop v%d: %w", v, err)
		}
	}
	return nil
}

// discovers reports whether routers find instances themselves (Consul).
func (d *Deployer) discovers() bool {
	_, ok := d.cfg.Runtime.(scheduler.ConsulDiscovery)
	return ok
}

// publish records where routers reach release's healthy web instances
// (nil insts: forget them), for runtimes routers cannot discover on their
// own. A write that changes nothing is skipped before it reaches raft.
func (d *Deployer) publish(ctx context.Context, app string, release uint64, insts []scheduler.Instance) error {
	if d.discovers() {
		return nil
	}
	var addrs []string
	for _, i := range insts {
		if i.Release == release && i.Process == "web" && i.Healthy && i.Addr != "" {
			addrs = append(addrs, i.Addr)
		}
	}
	if insts != nil && addrs == nil {
		addrs = []string{} // none healthy right now: an empty set, not "forget"
	}
	eps, _, err := d.cfg.State().Snapshot().Endpoints(nil)
	if err != nil {
		return err
	}
	cur, ok := eps[app][release]
	slices.Sort(addrs)
	if ok == (addrs != nil) && slices.Equal(cur, addrs) {
		return nil
	}
	if _, err := d.cfg.Apply(ctx, fsm.EndpointsSet{App: app, Release: release, Addrs: addrs}); err != nil {
		return fmt.Errorf("publish endpoints of %s v%d: %w", app, release, err)
	}
	return nil
}

// waitHealthy polls until every wanted instance of spec is healthy and
// returns the instances. On failure it returns the reason.
func (d *Deployer) waitHealthy(ctx context.Context, spec scheduler.Release, timeout time.Duration) ([]scheduler.Instance, string, error) {
	deadline := time.Now().Add(timeout)
	reason := "no instance reported yet"
	// Start again now and then: it converges, so an instance that died while
	// starting, or one a previous leader created but never started, is
	// replaced instead of waited for until the deadline.
	restartAt := time.Now().Add(restartEvery)
	for {
		if time.Now().After(restartAt) {
			restartAt = time.Now().Add(restartEvery)
			if err := d.cfg.Runtime.Start(ctx, spec); err != nil && ctx.Err() == nil {
				d.cfg.Logger.Warn("deploy: start again", "app", spec.App, "release", spec.Version, "err", err)
			}
		}
		insts, err := d.cfg.Runtime.Instances(ctx, spec.App)
		if errors.Is(err, scheduler.ErrUnavailable) && time.Now().After(deadline) {
			return nil, err.Error(), err
		}
		if err != nil {
			reason = err.Error()
		} else {
			ok, why, fatal := healthy(spec, insts)
			if ok {
				return insts, "", nil
			}
			reason = why
			if fatal {
				return nil, reason, errors.New(reason)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Sprintf("not healthy after %s: %s", timeout, reason), errors.New(reason)
		}
		select {
		case <-ctx.Done():
			return nil, reason, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// fail removes the new release's instances and records the reason; the
// active release is untouched.
func (d *Deployer) fail(ctx context.Context, dep *state.Deploy, spec scheduler.Release, reason string) error {
	d.cfg.Logger.Warn("deploy failed; removing the new instances", "deploy", dep.ID, "reason", reason)
	if spec.Version != 0 {
		if err := d.cfg.Runtime.StopRelease(ctx, dep.App, dep.To, 0); err != nil {
			reason += fmt.Sprintf(" (and removing its instances failed: %v)", err)
		}
	}
	return d.advance(ctx, dep.ID, state.DeployFailed, reason)
}

// reconcile applies the active release's formation again.
func (d *Deployer) reconcile(ctx context.Context, snap *state.Snapshot, app *state.App) {
	rel, _, err := snap.Release(nil, app.Name, app.ActiveRelease)
	if err != nil {
		return
	}
	spec, err := Spec(app, rel, d.cfg.Keyring())
	if err != nil {
		d.cfg.Logger.Warn("reconcile", "app", app.Name, "err", err)
		return
	}
	if err := d.cfg.Runtime.Start(ctx, spec); err != nil {
		if ctx.Err() == nil {
			d.cfg.Logger.Warn("reconcile", "app", app.Name, "err", err)
		}
		return
	}
	if d.discovers() {
		return
	}
	// Keep the routers' upstreams current: a replaced or added instance
	// joins once healthy, a dead one leaves.
	insts, err := d.cfg.Runtime.Instances(ctx, app.Name)
	if err != nil {
		return
	}
	if err := d.publish(ctx, app.Name, app.ActiveRelease, insts); err != nil && ctx.Err() == nil {
		d.cfg.Logger.Warn("reconcile: publish endpoints", "app", app.Name, "err", err)
	}
}
