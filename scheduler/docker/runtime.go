// Package docker is berth's single-host runtime: it runs releases as
// containers on one Docker engine, the default of `berth server --dev`.
//
// The engine is the only state. Every container carries labels naming its
// cluster, app, release, process, index and check, so a new Runtime (a
// restarted server) adopts the containers an old one started, and Start
// converges to a formation by comparing labels, never by remembering.
// Health checks run from outside the containers, in goroutines the Runtime
// owns, against each instance's published port; the results live in
// memory and are rebuilt within a check interval after a restart. See
// DESIGN.md for the reasons.
package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/scheduler"
)

// Config configures a Runtime.
type Config struct {
	// Docker is the engine's client (required): a *client.Client made with
	// client.WithAPIVersionNegotiation(), negotiated before it is shared
	// (client.NegotiateAPIVersion), as the client reads its API version
	// without a lock until then.
	Docker Docker
	// Network is the Docker network containers join (default "bridge").
	Network string
	// HostIP is the host address ports are published on and health checks
	// and routers connect to (default 127.0.0.1).
	HostIP string
	// Cluster separates berth clusters (or test runs) sharing an engine: it
	// is the value of every container's berth.cluster label, and a Runtime
	// sees only its cluster's containers (default "berth").
	Cluster string
	// Logger receives the runtime's logs (default: discarded).
	Logger *slog.Logger
	// Node is reported as every instance's node (default: the hostname).
	Node string
	// StopDrain is how long instances the runtime stops on its own (scale
	// down in Start, old instances in Restart) stay out of discovery before
	// SIGTERM, so routers polling Instances stop sending them requests.
	// 0 means the default of 2 s; negative means none.
	StopDrain time.Duration
	// RegistryAuth is the X-Registry-Auth value for pulling release images
	// (base64 JSON; "" for registries without auth).
	RegistryAuth string
	// NoInit runs containers without Docker's init process (which forwards
	// signals to `/bin/sh -c` commands and reaps zombies). Set it only for
	// engines that have no init binary.
	NoInit bool
}

const defaultStopDrain = 2 * time.Second

// Timeouts of the runtime's own engine calls.
const (
	engineTimeout  = 30 * time.Second
	healthDeadline = 60 * time.Second // for a replacement in Restart
	stopSlack      = 30 * time.Second // on top of the kill timeout
)

// Runtime runs releases on one Docker engine. It is safe for concurrent
// use. Close stops its goroutines; the containers keep running.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	docker Docker
	http   *http.Client
	trans  *http.Transport

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	negotiated sync.Once

	mu     sync.Mutex
	closed bool
	insts  map[string]*inst         // by container ID
	locks  map[string]chan struct{} // per release, see lock
	pulls  map[string]*sync.Mutex   // per image, so one Start pulls once
}

var _ scheduler.Runtime = (*Runtime)(nil)

// New returns a Runtime and starts watching the engine's events. It does
// no I/O before returning.
func New(cfg Config) (*Runtime, error) {
	if cfg.Docker == nil {
		return nil, errors.New("docker runtime: no Docker client")
	}
	if cfg.Network == "" {
		cfg.Network = "bridge"
	}
	if cfg.HostIP == "" {
		cfg.HostIP = "127.0.0.1"
	}
	if net.ParseIP(cfg.HostIP) == nil {
		return nil, fmt.Errorf("docker runtime: host IP %q is not an IP address", cfg.HostIP)
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "berth"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	switch {
	case cfg.StopDrain == 0:
		cfg.StopDrain = defaultStopDrain
	case cfg.StopDrain < 0:
		cfg.StopDrain = 0
	}
	// Checks open a new connection each time (a kept-alive connection
	// would hide a restarted app) and never go through a proxy.
	trans := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runtime{
		cfg:    cfg,
		log:    cfg.Logger.With("runtime", "docker"),
		docker: cfg.Docker,
		trans:  trans,
		http: &http.Client{
			Transport:     trans,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		ctx:    ctx,
		cancel: cancel,
		insts:  map[string]*inst{},
		locks:  map[string]chan struct{}{},
		pulls:  map[string]*sync.Mutex{},
	}
	r.wg.Add(1)
	go r.watch()
	return r, nil
}

// Close stops the runtime's goroutines (event watch, health checks,
// background stops) and waits for them. Containers are left running: apps
// outlive the server. Close is idempotent.
func (r *Runtime) Close() error {
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.cancel()
		r.wg.Wait()
		r.trans.CloseIdleConnections()
	})
	return nil
}

// Name implements scheduler.Runtime.
func (r *Runtime) Name() string { return "docker" }

// errClosed is what methods return after Close.
var errClosed = fmt.Errorf("%w: docker runtime closed", scheduler.ErrUnavailable)

// usable is the first step of every method: it fails after Close, and
// makes sure the client has negotiated its API version.
func (r *Runtime) usable(ctx context.Context) error {
	if r.ctx.Err() != nil {
		return errClosed
	}
	r.negotiate(ctx)
	return nil
}

// negotiate makes sure, once, that the client has negotiated its API
// version before the runtime uses it from several goroutines. Until it has,
// docker/client v28 reads its version without a lock in some calls
// (ContainerList with filters, Events), racing with the lazy negotiation of
// a concurrent call. A list without filters takes the client's guarded
// path (negotiating if needed, a no-op if done). Whoever creates the client
// should still negotiate (client.NegotiateAPIVersion) before sharing it.
func (r *Runtime) negotiate(ctx context.Context) {
	r.negotiated.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, engineTimeout)
		defer cancel()
		_, _ = r.docker.ContainerList(ctx, container.ListOptions{Limit: 1})
	})
}

// engineErr marks a failure to reach the engine as scheduler.ErrUnavailable.
func engineErr(err error) error {
	if err != nil && client.IsErrConnectionFailed(err) {
		return fmt.Errorf("%w: %w", scheduler.ErrUnavailable, err)
	}
	return err
}

// lock serialises Start, Restart and StopRelease of one release: Start's
// "two containers in one slot" rule would otherwise stop a replacement
// Restart is waiting on.
func (r *Runtime) lock(ctx context.Context, app string, version uint64) (unlock func(), err error) {
	key := app + "/" + strconv.FormatUint(version, 10)
	r.mu.Lock()
	ch := r.locks[key]
	if ch == nil {
		ch = make(chan struct{}, 1)
		r.locks[key] = ch
	}
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// listFilter selects containers of the runtime's cluster.
type listFilter struct {
	app     string
	version *uint64
	runs    bool // include one-off containers
}

// list asks the engine for containers and tracks each (starting its
// health checks if new). One-off containers are left out unless asked for.
func (r *Runtime) list(ctx context.Context, f listFilter) ([]*inst, error) {
	args := filters.NewArgs(filters.Arg("label", labelCluster+"="+r.cfg.Cluster))
	if f.app != "" {
		args.Add("label", labelApp+"="+f.app)
	}
	if f.version != nil {
		args.Add("label", labelRelease+"="+strconv.FormatUint(*f.version, 10))
	}
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	cs, err := r.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", engineErr(err))
	}
	out := make([]*inst, 0, len(cs))
	for _, c := range cs {
		t := r.observe(c)
		if t == nil || (t.meta.Run && !f.runs) {
			continue
		}
		out = append(out, t)
	}
	return out, nil
}

// Instances implements scheduler.Runtime. It asks the engine each time, so
// it sees what another Runtime started; health comes from the checks this
// Runtime runs (an adopted instance is Healthy after its first pass).
func (r *Runtime) Instances(ctx context.Context, app string) ([]scheduler.Instance, error) {
	if err := r.usable(ctx); err != nil {
		return nil, err
	}
	if err := validApp(app); err != nil {
		return nil, err
	}
	ts, err := r.list(ctx, listFilter{app: app})
	if err != nil {
		return nil, fmt.Errorf("instances of %s: %w", app, err)
	}
	out := make([]scheduler.Instance, 0, len(ts))
	r.mu.Lock()
	for _, t := range ts {
		out = append(out, r.viewLocked(t))
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b scheduler.Instance) int {
		return cmp.Or(cmp.Compare(a.Release, b.Release), cmp.Compare(a.Process, b.Process),
			cmp.Compare(a.Index, b.Index), a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Start implements scheduler.Runtime. It creates missing instances and
// returns once they are started; instances beyond the formation leave
// discovery at once and are stopped in the background after StopDrain.
// Dead instances (stopped behind the runtime's back) are replaced.
// Crashed ones are restarted by the engine (restart policy
// unless-stopped), which keeps working while no berth server runs.
func (r *Runtime) Start(ctx context.Context, rel scheduler.Release) error {
	if err := r.usable(ctx); err != nil {
		return err
	}
	if err := validRelease(rel); err != nil {
		return err
	}
	unlock, err := r.lock(ctx, rel.App, rel.Version)
	if err != nil {
		return err
	}
	defer unlock()
	ts, err := r.list(ctx, listFilter{app: rel.App, version: &rel.Version})
	if err != nil {
		return fmt.Errorf("start %s v%d: %w", rel.App, rel.Version, err)
	}
	if err := r.startCreated(ctx, ts); err != nil {
		return fmt.Errorf("start %s v%d: %w", rel.App, rel.Version, err)
	}
	p := planFormation(rel, r.haves(ts))
	var errs []error
	// Dead containers go first, so a slot never shows twice.
	if err := r.stopAll(ctx, p.Remove, 0, true); err != nil {
		errs = append(errs, err)
	}
	if len(p.Stop) > 0 {
		r.stopInBackground(p.Stop)
	}
	procs := map[string]scheduler.Process{}
	for _, pr := range rel.Processes {
		procs[pr.Name] = pr
	}
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, 4) // the engine creates slowly; a few at a time
	)
	for _, s := range p.Create {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := r.createInstance(ctx, rel, procs[s.Process], s.Index); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("start %s v%d: %w", rel.App, rel.Version, err)
	}
	if len(p.Create)+len(p.Stop)+len(p.Remove) > 0 {
		r.log.Info("release converged", "app", rel.App, "release", rel.Version,
			"created", len(p.Create), "stopping", len(p.Stop), "replaced_dead", len(p.Remove))
	}
	return nil
}

// startCreated starts the release's containers that were created but
// never started: Starts are serialised, so such a container is another
// server's, which died (or lost its leadership) between creating and
// starting it. Starting it now, rather than waiting to see whether that
// server still does, costs nothing: starting a running container is a
// no-op. A container the engine cannot start (no such executable) keeps
// the engine's reason and is no longer live, so the plan replaces it in
// this Start.
func (r *Runtime) startCreated(ctx context.Context, ts []*inst) error {
	for _, t := range ts {
		r.mu.Lock()
		created := t.state == container.StateCreated && !t.stopping
		r.mu.Unlock()
		if !created {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, engineTimeout)
		err := r.docker.ContainerStart(sctx, t.id, container.StartOptions{})
		cancel()
		switch {
		case err == nil:
			r.log.Info("started a container another server created", "container", short(t.id),
				"app", t.meta.App, "release", t.meta.Release, "instance", t.meta.Process+"."+strconv.Itoa(t.meta.Index))
			// What it does now: running, or (an entrypoint the engine
			// cannot exec, with the restart policy) restarting, which is
			// not live and is replaced below.
			r.inspect(ctx, t)
		case client.IsErrConnectionFailed(err), ctx.Err() != nil:
			return fmt.Errorf("start created container %s: %w", short(t.id), engineErr(err))
		default:
			// Gone meanwhile, or it cannot start: either way it is not
			// live, and the plan fills its slot.
			r.mu.Lock()
			if t.engineErr == "" {
				t.engineErr = err.Error()
			}
			t.state = container.StateCreated
			t.down()
			r.mu.Unlock()
		}
		r.refreshSoon(t)
	}
	return nil
}

// haves turns tracked containers into planning input.
func (r *Runtime) haves(ts []*inst) []have {
	r.mu.Lock()
	defer r.mu.Unlock()
	hs := make([]have, 0, len(ts))
	for _, t := range ts {
		hs = append(hs, have{
			ID:       t.id,
			Process:  t.meta.Process,
			Index:    t.meta.Index,
			Live:     t.live(),
			Healthy:  t.health.healthy,
			Stopping: t.stopping,
			Created:  t.created,
		})
	}
	return hs
}

// createInstance creates and starts one instance. If the engine refuses to
// start it (no such executable), the container stays, so Instances shows
// the engine's reason; the next Start replaces it.
func (r *Runtime) createInstance(ctx context.Context, rel scheduler.Release, p scheduler.Process, index int) (*inst, error) {
	sp := r.cfg.instanceSpec(rel, p, index, randomSuffix())
	id, err := r.create(ctx, sp)
	if err != nil {
		return nil, fmt.Errorf("create %s.%d: %w", p.Name, index, err)
	}
	m, _ := parseLabels(sp.Config.Labels)
	t := r.track(id, m, time.Now())
	sctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	err = r.docker.ContainerStart(sctx, id, container.StartOptions{})
	r.refreshSoon(t)
	if err != nil {
		return t, fmt.Errorf("start %s.%d: %w", p.Name, index, engineErr(err))
	}
	return t, nil
}

// create creates a container, pulling its image first if the engine does
// not have it.
func (r *Runtime) create(ctx context.Context, sp spec) (string, error) {
	id, err := r.createOnce(ctx, sp)
	if err != nil && cerrdefs.IsNotFound(err) {
		if perr := r.pull(ctx, sp.Config.Image); perr != nil {
			return "", perr
		}
		id, err = r.createOnce(ctx, sp)
	}
	if err != nil {
		return "", engineErr(err)
	}
	return id, nil
}

func (r *Runtime) createOnce(ctx context.Context, sp spec) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	resp, err := r.docker.ContainerCreate(ctx, sp.Config, sp.Host, nil, nil, sp.Name)
	return resp.ID, err
}

// StopRelease implements scheduler.Runtime: the release's instances leave
// discovery at once (StateStopping, not Healthy), stay up for drain, then
// get SIGTERM and, after the release's kill timeout, SIGKILL; then they
// are removed. It returns when they are gone. If ctx ends during the
// drain, nothing is stopped and the instances return to service; once
// stopping has begun it completes even if ctx ends.
func (r *Runtime) StopRelease(ctx context.Context, app string, version uint64, drain time.Duration) error {
	if err := r.usable(ctx); err != nil {
		return err
	}
	if err := validApp(app); err != nil {
		return err
	}
	unlock, err := r.lock(ctx, app, version)
	if err != nil {
		return err
	}
	defer unlock()
	ts, err := r.list(ctx, listFilter{app: app, version: &version})
	if err != nil {
		return fmt.Errorf("stop %s v%d: %w", app, version, err)
	}
	if err := r.stopAll(ctx, ids(ts), drain, false); err != nil {
		return fmt.Errorf("stop %s v%d: %w", app, version, err)
	}
	return nil
}

// Restart implements scheduler.Runtime: for each instance in turn (by
// process, then index) a replacement with the same index starts, must be
// Healthy within 60 s, and only then the old one is stopped (after
// StopDrain). A replacement that fails is removed and Restart returns its
// reason, with the old instance still serving.
func (r *Runtime) Restart(ctx context.Context, rel scheduler.Release, process string) error {
	if err := r.usable(ctx); err != nil {
		return err
	}
	if err := validRelease(rel); err != nil {
		return err
	}
	unlock, err := r.lock(ctx, rel.App, rel.Version)
	if err != nil {
		return err
	}
	defer unlock()
	ts, err := r.list(ctx, listFilter{app: rel.App, version: &rel.Version})
	if err != nil {
		return fmt.Errorf("restart %s v%d: %w", rel.App, rel.Version, err)
	}
	procs := map[string]scheduler.Process{}
	for _, p := range rel.Processes {
		procs[p.Name] = p
	}
	r.mu.Lock()
	olds := slices.DeleteFunc(ts, func(t *inst) bool {
		_, known := procs[t.meta.Process]
		return t.stopping || !known || (process != "" && t.meta.Process != process)
	})
	r.mu.Unlock()
	if len(olds) == 0 {
		return fmt.Errorf("restart %s v%d %s: no instances: %w", rel.App, rel.Version, process, scheduler.ErrNotFound)
	}
	slices.SortFunc(olds, func(a, b *inst) int {
		return cmp.Or(cmp.Compare(a.meta.Process, b.meta.Process), cmp.Compare(a.meta.Index, b.meta.Index))
	})
	for _, old := range olds {
		name := old.meta.Process + "." + strconv.Itoa(old.meta.Index)
		nt, err := r.createInstance(ctx, rel, procs[old.meta.Process], old.meta.Index)
		if err == nil {
			err = r.waitHealthy(ctx, nt, healthDeadline)
		}
		if err != nil {
			if nt != nil {
				_ = r.stopAll(ctx, []string{nt.id}, 0, true)
			}
			return fmt.Errorf("restart %s v%d %s: replacement: %w", rel.App, rel.Version, name, err)
		}
		if err := r.stopAll(ctx, []string{old.id}, r.cfg.StopDrain, false); err != nil {
			return fmt.Errorf("restart %s v%d %s: stop the old instance: %w", rel.App, rel.Version, name, err)
		}
	}
	return nil
}

// waitHealthy waits until t passes its check, failing early if it exits.
func (r *Runtime) waitHealthy(ctx context.Context, t *inst, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		healthy, dead, msg := t.health.healthy && t.state == container.StateRunning, t.failedStart(), t.health.message
		r.mu.Unlock()
		switch {
		case healthy:
			return nil
		case dead:
			return fmt.Errorf("not healthy: %s", msg)
		}
		select {
		case <-ctx.Done():
			if msg == "" {
				msg = "no check passed"
			}
			return fmt.Errorf("not healthy after %s: %s: %w", timeout, msg, ctx.Err())
		case <-tick.C:
		}
	}
}

// Destroy implements scheduler.Runtime: every container of the app,
// one-off ones too, is stopped (SIGTERM, then SIGKILL after the kill
// timeout) and removed, without a drain.
func (r *Runtime) Destroy(ctx context.Context, app string) error {
	if err := r.usable(ctx); err != nil {
		return err
	}
	if err := validApp(app); err != nil {
		return err
	}
	ts, err := r.list(ctx, listFilter{app: app, runs: true})
	if err != nil {
		return fmt.Errorf("destroy %s: %w", app, err)
	}
	if err := r.stopAll(ctx, ids(ts), 0, false); err != nil {
		return fmt.Errorf("destroy %s: %w", app, err)
	}
	return nil
}

func ids(ts []*inst) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.id
	}
	return out
}

// stopInBackground stops containers in a goroutine of the runtime: they
// leave discovery now and are stopped after StopDrain. If the runtime
// closes first they are left running, and the next Start stops them again.
func (r *Runtime) stopInBackground(ids []string) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	r.markStopping(ids, true)
	go func() {
		defer r.wg.Done()
		if err := r.stopAll(r.ctx, ids, r.cfg.StopDrain, false); err != nil && r.ctx.Err() == nil {
			r.log.Warn("stop instances", "err", err)
		}
	}()
}

// stopAll takes containers out of discovery, waits drain, then stops and
// removes them in parallel. force skips SIGTERM (for dead or failed
// containers). If ctx ends during the drain the containers are put back;
// after it, stopping goes on to the end, bounded by the kill timeout.
func (r *Runtime) stopAll(ctx context.Context, ids []string, drain time.Duration, force bool) error {
	if len(ids) == 0 {
		return nil
	}
	r.markStopping(ids, true)
	if drain > 0 {
		t := time.NewTimer(drain)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			r.markStopping(ids, false)
			return ctx.Err()
		}
	}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.stopAndRemove(ctx, id, force)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopAndRemove stops one container (the engine sends SIGTERM and, after
// the container's stop timeout, SIGKILL) and removes it.
func (r *Runtime) stopAndRemove(ctx context.Context, id string, force bool) error {
	kt := defaultKillTimeout
	r.mu.Lock()
	if t := r.insts[id]; t != nil {
		kt = t.meta.KillTimeout
	}
	r.mu.Unlock()
	// Once begun, a stop goes on even if the caller gives up (half-stopped
	// releases help nobody), bounded by the kill timeout; only Close
	// interrupts it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kt+stopSlack)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()
	if !force {
		err := r.docker.ContainerStop(ctx, id, container.StopOptions{})
		if err != nil && !cerrdefs.IsNotFound(err) {
			r.log.Warn("stop container", "id", short(id), "err", err)
		}
	}
	err := r.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("remove container %s: %w", short(id), engineErr(err))
	}
	r.forget(id)
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// pull pulls ref, once at a time per image.
func (r *Runtime) pull(ctx context.Context, ref string) error {
	r.mu.Lock()
	mu := r.pulls[ref]
	if mu == nil {
		mu = &sync.Mutex{}
		r.pulls[ref] = mu
	}
	r.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	r.log.Info("pull image", "image", ref)
	rc, err := r.docker.ImagePull(ctx, ref, pullOptions(r.cfg.RegistryAuth))
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, engineErr(err))
	}
	defer rc.Close()
	if err := readPull(rc); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// readPull reads the engine's pull progress to its end and returns the
// error it reports, if any.
func readPull(rc io.Reader) error {
	return decodeStream(rc)
}
