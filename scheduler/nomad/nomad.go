// Package nomad is berth's multi-host runtime: it runs releases as Nomad
// jobs on a Nomad cluster and finds healthy instances through Consul.
//
// Each release is one Nomad service job (berth-APP-vVERSION), so releases
// of an app run side by side for blue-green cutovers and stopping one is
// deregistering its job. Each process type is a task group whose count is
// the formation. Instances are Nomad allocations; their health comes from
// the Consul checks Nomad registers for them, run by Consul from outside
// the containers. Nomad and Consul are the only state: a new Runtime (a
// restarted or new leader) sees everything an old one started. See
// DESIGN.md for the reasons.
package nomad

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// Config configures a Runtime.
type Config struct {
	// NomadAddr is the HTTP API of a Nomad agent (a server, or a client
	// that forwards to the servers), default "http://127.0.0.1:4646".
	// host:port means http, or https when NomadTLS sets anything.
	NomadAddr string
	// NomadToken is a Nomad ACL token ("" without ACLs). It needs
	// submit-job, read-job, read-logs and alloc-exec in Namespace.
	NomadToken string
	// NomadTLS configures HTTPS to Nomad: to NomadAddr, and to client
	// nodes, which berth reaches directly for logs and exec (falling back
	// to the servers when that fails, e.g. because a client's certificate
	// holds another name than NomadTLS.ServerName).
	NomadTLS TLS
	// ConsulAddr is the HTTP API of a Consul agent, default
	// "127.0.0.1:8500" (host:port, or a URL with http:// or https://).
	// host:port means http, or https when ConsulTLS sets anything.
	ConsulAddr string
	// ConsulToken is a Consul ACL token with service:read and node:read.
	ConsulToken string
	// ConsulTLS configures HTTPS to Consul.
	ConsulTLS TLS
	// Datacenters the jobs may run in (default ["dc1"]).
	Datacenters []string
	// Region of the jobs ("": the agent's region).
	Region string
	// Namespace of the jobs (default "default").
	Namespace string
	// StopDrain is the shutdown_delay of every instance: how long an
	// instance Nomad stops (scale-down in Start, old instances in Restart,
	// StopRelease with this drain) stays up after leaving Consul, before
	// SIGTERM. Set it to the drain the deployer passes to StopRelease, so
	// that stopping a release needs no job update. 0 means the default of
	// 2 s; negative means none.
	StopDrain time.Duration
	// NoInit runs containers without Docker's init process (which forwards
	// signals to `/bin/sh -c` commands and reaps zombies). Set it only for
	// nodes whose Docker has no init binary.
	NoInit bool
	// Logger receives the runtime's logs (default: discarded).
	Logger *slog.Logger
}

const (
	defaultNomadAddr  = "http://127.0.0.1:4646"
	defaultConsulAddr = "127.0.0.1:8500"
	defaultStopDrain  = 2 * time.Second
)

// Timeouts and poll intervals of the runtime's own waits.
const (
	dialTimeout  = 5 * time.Second
	queryTimeout = time.Minute // of one API request (not of log streams and exec)
	pollEvery    = 250 * time.Millisecond
	inPlaceWait  = 15 * time.Second // for an in-place update of the shutdown delay
	cleanupAfter = 30 * time.Second // bound of a purge after Run
)

// Runtime runs releases on a Nomad cluster. It is safe for concurrent use.
// Close ends following log streams; the jobs keep running.
type Runtime struct {
	cfg Config
	log *slog.Logger
	c   clients

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	once   sync.Once

	mu    sync.Mutex
	locks map[string]chan struct{} // per job, see lock
}

var _ scheduler.Runtime = (*Runtime)(nil)

// New returns a Runtime for the Nomad and Consul agents of cfg. It does no
// I/O: an unreachable agent shows as scheduler.ErrUnavailable on the first
// call.
func New(cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	// Queries share a keep-alive transport; log streams and exec sessions
	// are long requests with a transport of their own without keep-alives
	// (Nomad's client clones it to reach client nodes directly).
	ntls, err := cfg.NomadTLS.config("Nomad")
	if err != nil {
		return nil, fmt.Errorf("nomad runtime: %w", err)
	}
	ctls, err := cfg.ConsulTLS.config("Consul")
	if err != nil {
		return nil, fmt.Errorf("nomad runtime: %w", err)
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	pooled := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSClientConfig:     ntls.Clone(),
		TLSHandshakeTimeout: dialTimeout,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
	single := &http.Transport{Proxy: nil, DialContext: dialer.DialContext, TLSClientConfig: ntls.Clone(),
		TLSHandshakeTimeout: dialTimeout, DisableKeepAlives: true}
	cpooled := &http.Transport{Proxy: nil, DialContext: dialer.DialContext, TLSClientConfig: ctls,
		TLSHandshakeTimeout: dialTimeout, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}

	nomadConfig := func(tr *http.Transport, timeout time.Duration) *api.Config {
		return &api.Config{
			Address:    cfg.NomadAddr,
			SecretID:   cfg.NomadToken,
			Region:     cfg.Region,
			Namespace:  cfg.Namespace,
			HttpClient: &http.Client{Transport: tr, Timeout: timeout},
		}
	}
	nc, err := api.NewClient(nomadConfig(pooled, queryTimeout))
	if err != nil {
		return nil, fmt.Errorf("nomad runtime: nomad client for %s: %w", cfg.NomadAddr, err)
	}
	sc, err := api.NewClient(nomadConfig(single, 0))
	if err != nil {
		return nil, fmt.Errorf("nomad runtime: nomad client for %s: %w", cfg.NomadAddr, err)
	}
	cc, err := consul.NewClient(&consul.Config{
		Address:    cfg.ConsulAddr,
		Token:      cfg.ConsulToken,
		HttpClient: &http.Client{Transport: cpooled, Timeout: queryTimeout},
	})
	if err != nil {
		return nil, fmt.Errorf("nomad runtime: consul client for %s: %w", cfg.ConsulAddr, err)
	}
	return newRuntime(cfg, clients{
		jobs:   nc.Jobs(),
		allocs: nc.Allocations(),
		evals:  nc.Evaluations(),
		stream: streams{fs: sc.AllocFS(), allocs: sc.Allocations()},
		health: cc.Health(),
		closeIdle: func() {
			pooled.CloseIdleConnections()
			single.CloseIdleConnections()
			cpooled.CloseIdleConnections()
		},
	}), nil
}

// withDefaults fills in and checks a Config.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.NomadAddr == "" {
		cfg.NomadAddr = defaultNomadAddr
		if cfg.NomadTLS.set() {
			cfg.NomadAddr = strings.Replace(defaultNomadAddr, "http://", "https://", 1)
		}
	}
	addr, err := withScheme("Nomad", cfg.NomadAddr, cfg.NomadTLS)
	if err != nil {
		return cfg, fmt.Errorf("nomad runtime: %w", err)
	}
	cfg.NomadAddr = addr
	if u, err := url.Parse(cfg.NomadAddr); err != nil || u.Host == "" {
		return cfg, fmt.Errorf("nomad runtime: Nomad address %q is not host:port or a URL", cfg.NomadAddr)
	}
	if cfg.ConsulAddr == "" {
		cfg.ConsulAddr = defaultConsulAddr
	}
	if cfg.ConsulTLS.set() {
		// Consul's client reads the scheme from the address.
		if cfg.ConsulAddr, err = withScheme("Consul", cfg.ConsulAddr, cfg.ConsulTLS); err != nil {
			return cfg, fmt.Errorf("nomad runtime: %w", err)
		}
	}
	if len(cfg.Datacenters) == 0 {
		cfg.Datacenters = []string{"dc1"}
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	switch {
	case cfg.StopDrain == 0:
		cfg.StopDrain = defaultStopDrain
	case cfg.StopDrain < 0:
		cfg.StopDrain = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// newRuntime is New with the clients given (tests pass fakes).
func newRuntime(cfg Config, c clients) *Runtime {
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{
		cfg:    cfg,
		log:    cfg.Logger.With("runtime", "nomad"),
		c:      c,
		ctx:    ctx,
		cancel: cancel,
		locks:  map[string]chan struct{}{},
	}
}

// Close ends following Logs calls and closes idle connections; the
// runtime starts no goroutines of its own. Jobs keep running: apps outlive
// the server. Close is idempotent.
func (r *Runtime) Close() error {
	r.once.Do(func() {
		r.cancel()
		if r.c.closeIdle != nil {
			r.c.closeIdle()
		}
	})
	return nil
}

// Name implements scheduler.Runtime.
func (r *Runtime) Name() string { return "nomad" }

// errClosed is what methods return after Close.
var errClosed = fmt.Errorf("%w: nomad runtime closed", scheduler.ErrUnavailable)

func (r *Runtime) usable() error {
	if r.ctx.Err() != nil {
		return errClosed
	}
	return nil
}

// qopts and wopts carry ctx to a Nomad call.
func qopts(ctx context.Context) *api.QueryOptions { return (&api.QueryOptions{}).WithContext(ctx) }
func wopts(ctx context.Context) *api.WriteOptions { return (&api.WriteOptions{}).WithContext(ctx) }

// lock serialises Start, Restart and StopRelease of one job within this
// Runtime: a Restart waits on the job version it registered, which a
// concurrent Start would replace. (Across servers only the leader deploys.)
func (r *Runtime) lock(ctx context.Context, id string) (unlock func(), err error) {
	r.mu.Lock()
	ch := r.locks[id]
	if ch == nil {
		ch = make(chan struct{}, 1)
		r.locks[id] = ch
	}
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// jobOptions are the runtime's settings for the jobs it generates.
func (r *Runtime) jobOptions() jobOptions {
	return jobOptions{
		Datacenters:   r.cfg.Datacenters,
		Region:        r.cfg.Region,
		Namespace:     r.cfg.Namespace,
		ShutdownDelay: r.cfg.StopDrain,
		NoInit:        r.cfg.NoInit,
	}
}

// job returns the job id, or nil if Nomad does not know it.
func (r *Runtime) job(ctx context.Context, id string) (*api.Job, error) {
	job, _, err := r.c.jobs.Info(id, qopts(ctx))
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, r.nomadErr("read job "+id, err)
	}
	return job, nil
}

func stopped(job *api.Job) bool { return job.Stop != nil && *job.Stop }

// register submits a job and returns its JobModifyIndex and evaluation.
func (r *Runtime) register(ctx context.Context, job *api.Job, opts *api.RegisterOptions) (*api.JobRegisterResponse, error) {
	resp, _, err := r.c.jobs.RegisterOpts(job, opts, wopts(ctx))
	if err != nil {
		return nil, r.nomadErr("register job "+*job.ID, err)
	}
	if resp.Warnings != "" {
		r.log.Warn("nomad warns about a job", "job", *job.ID, "warnings", resp.Warnings)
	}
	return resp, nil
}

// Start implements scheduler.Runtime: it registers the release's job with
// rel's formation, unless the job registered already is exactly that
// (then it changes nothing). A changed count scales (Nomad keeps the
// allocations that stay and stops the highest indexes); a changed spec
// rolls through Nomad's deployment (canary, health-gated, auto-revert). It
// returns once Nomad accepted the job; Instances shows the progress.
// Restarts of crashed or killed instances are Nomad's (restart and
// reschedule policies), also while no berth server runs.
func (r *Runtime) Start(ctx context.Context, rel scheduler.Release) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := validRelease(rel); err != nil {
		return err
	}
	id := jobID(rel.App, rel.Version)
	unlock, err := r.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	existing, err := r.job(ctx, id)
	if err != nil {
		return fmt.Errorf("start %s v%d: %w", rel.App, rel.Version, err)
	}
	o := r.jobOptions()
	o.Restarts = restartsOf(existing)
	job := releaseJob(rel, o)
	if existing != nil && !stopped(existing) && sameSpec(existing, job) {
		return nil
	}
	if _, err := r.register(ctx, job, nil); err != nil {
		return fmt.Errorf("start %s v%d: %w", rel.App, rel.Version, err)
	}
	r.log.Info("release registered", "app", rel.App, "release", rel.Version, "job", id, "updated", existing != nil)
	return nil
}

// StopRelease implements scheduler.Runtime by deregistering the release's
// job: Nomad marks its allocations to stop at once (Instances shows them
// stopping, not Healthy), removes their services from Consul, waits the
// task's shutdown_delay (the drain), sends SIGTERM and, after the kill
// timeout, SIGKILL. When drain differs from the job's shutdown_delay, the
// delay is first updated in place (no restart). It returns once the
// allocations are gone, and then purges the job. If ctx ends while it
// waits, the instances still stop; a later StopRelease or Destroy purges.
func (r *Runtime) StopRelease(ctx context.Context, app string, version uint64, drain time.Duration) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := validApp(app); err != nil {
		return err
	}
	id := jobID(app, version)
	unlock, err := r.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	what := fmt.Sprintf("stop %s v%d", app, version)
	job, err := r.job(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if job != nil && !stopped(job) {
		opts := &api.DeregisterOptions{}
		switch {
		case drain <= 0:
			opts.NoShutdownDelay = true
		case allShutdownDelays(job, drain):
		default:
			if err := r.setShutdownDelay(ctx, job, drain); err != nil {
				if errors.Is(err, scheduler.ErrUnavailable) || ctx.Err() != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
				// The release still stops, with the drain it was started with.
				r.log.Warn("could not set the drain; stopping with the job's shutdown delay",
					"job", id, "drain", drain, "err", err)
			}
		}
		if _, _, err := r.c.jobs.DeregisterOpts(id, opts, wopts(ctx)); err != nil && !notFound(err) {
			return fmt.Errorf("%s: %w", what, r.nomadErr("deregister job "+id, err))
		}
		r.log.Info("release stopping", "app", app, "release", version, "drain", drain)
	}
	if err := r.waitGone(ctx, fmt.Sprintf(`JobID == "%s"`, id)); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if job != nil {
		if _, _, err := r.c.jobs.DeregisterOpts(id, &api.DeregisterOptions{Purge: true, NoShutdownDelay: true}, wopts(ctx)); err != nil && !notFound(err) {
			return fmt.Errorf("%s: %w", what, r.nomadErr("purge job "+id, err))
		}
	}
	return nil
}

// setShutdownDelay updates the shutdown delay of a running job's tasks in
// place and waits until Nomad applied it to the job's allocations. A task
// runner reads the delay from the allocation it last received, also when
// that update is the stop itself, so the stop that follows waits d. The
// update is planned first: if Nomad would replace any allocation for it
// (it never should), nothing is changed.
func (r *Runtime) setShutdownDelay(ctx context.Context, job *api.Job, d time.Duration) error {
	id := *job.ID
	for _, g := range job.TaskGroups {
		for _, t := range g.Tasks {
			t.ShutdownDelay = d
		}
	}
	plan, _, err := r.c.jobs.Plan(job, false, wopts(ctx))
	if err != nil {
		return r.nomadErr("plan the drain of job "+id, err)
	}
	if plan.Annotations != nil {
		for g, u := range plan.Annotations.DesiredTGUpdates {
			if u != nil && u.Place+u.DestructiveUpdate+u.Canary+u.Stop > 0 {
				return fmt.Errorf("setting the drain would replace allocations of group %s (%+v)", g, *u)
			}
		}
	}
	var index uint64
	if job.JobModifyIndex != nil {
		index = *job.JobModifyIndex
	}
	if _, err := r.register(ctx, job, &api.RegisterOptions{EnforceIndex: true, ModifyIndex: index}); err != nil {
		return err
	}
	updated, err := r.job(ctx, id)
	if err != nil || updated == nil || updated.Version == nil {
		return fmt.Errorf("read job %s after setting the drain: %w", id, err)
	}
	version := *updated.Version
	wctx, cancel := context.WithTimeout(ctx, inPlaceWait)
	defer cancel()
	for {
		stubs, _, err := r.c.jobs.Allocations(id, false, qopts(wctx))
		if err != nil {
			if ctx.Err() == nil && wctx.Err() != nil {
				return fmt.Errorf("allocations of job %s not updated within %s", id, inPlaceWait)
			}
			return r.nomadErr("list allocations of job "+id, err)
		}
		done := true
		for _, a := range stubs {
			if !terminal(a) && a.JobVersion < version {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("allocations of job %s not updated within %s", id, inPlaceWait)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// terminal says whether an allocation has finished on its client.
func terminal(a *api.AllocationListStub) bool {
	switch a.ClientStatus {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}

// waitGone waits until no allocation selected by filter (a go-bexpr
// expression over allocations) is still running on its client.
func (r *Runtime) waitGone(ctx context.Context, filter string) error {
	q := &api.QueryOptions{Filter: filter}
	for {
		stubs, _, err := r.c.allocs.List(q.WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.nomadErr("list allocations", err)
		}
		left := 0
		for _, a := range stubs {
			if !terminal(a) {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d allocations still stopping: %w", left, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

// Restart implements scheduler.Runtime with a Nomad deployment: it bumps
// the berth_restart meta of the process's group (of every group when
// process is ""), which makes Nomad replace the group's allocations: one
// canary first, promoted once healthy (Consul checks passing for 1 s),
// then the others one at a time, each old one leaving Consul before it is
// stopped. It returns once the deployment succeeded, or with its failure
// (Nomad then reverts to the previous job version, and the old instances
// keep serving).
func (r *Runtime) Restart(ctx context.Context, rel scheduler.Release, process string) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := validRelease(rel); err != nil {
		return err
	}
	id := jobID(rel.App, rel.Version)
	what := fmt.Sprintf("restart %s v%d %s", rel.App, rel.Version, process)
	unlock, err := r.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	existing, err := r.job(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if existing == nil || stopped(existing) {
		return fmt.Errorf("%s: release not running: %w", what, scheduler.ErrNotFound)
	}
	restarts := restartsOf(existing)
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	instances := 0
	for _, p := range rel.Processes {
		if process == "" || p.Name == process {
			restarts[p.Name] = stamp
			instances += p.Count
		}
	}
	if instances == 0 {
		return fmt.Errorf("%s: no instances: %w", what, scheduler.ErrNotFound)
	}
	o := r.jobOptions()
	o.Restarts = restarts
	resp, err := r.register(ctx, releaseJob(rel, o), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	r.log.Info("restarting", "app", rel.App, "release", rel.Version, "process", process)
	if err := r.waitDeployment(ctx, id, resp.EvalID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// waitDeployment waits for the evaluation of a job update, then for the
// deployment it created to succeed.
func (r *Runtime) waitDeployment(ctx context.Context, id, evalID string) error {
	var deployment string
	for deployment == "" {
		ev, _, err := r.c.evals.Info(evalID, qopts(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.nomadErr("read evaluation "+evalID, err)
		}
		switch ev.Status {
		case "complete":
			if ev.DeploymentID == "" {
				return nil // nothing to replace
			}
			deployment = ev.DeploymentID
			continue
		case "failed", "canceled":
			return fmt.Errorf("evaluation %s %s: %s", evalID, ev.Status, ev.StatusDescription)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	for {
		ds, _, err := r.c.jobs.Deployments(id, false, qopts(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.nomadErr("read deployments of job "+id, err)
		}
		for _, d := range ds {
			if d.ID != deployment {
				continue
			}
			switch d.Status {
			case "successful":
				return nil
			case "failed", "cancelled":
				return fmt.Errorf("deployment %.8s %s: %s", d.ID, d.Status, d.StatusDescription)
			}
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return fmt.Errorf("deployment %.8s: %w", deployment, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// appJobs lists app's jobs (releases and runs).
func (r *Runtime) appJobs(ctx context.Context, app string) ([]string, error) {
	stubs, _, err := r.c.jobs.List((&api.QueryOptions{Prefix: jobPrefix(app)}).WithContext(ctx))
	if err != nil {
		return nil, r.nomadErr("list jobs of "+app, err)
	}
	var ids []string
	for _, s := range stubs {
		if _, _, ok := parseJobID(app, s.ID); ok {
			ids = append(ids, s.ID)
		}
	}
	return ids, nil
}

// Destroy implements scheduler.Runtime: every job of the app, one-off
// ones too, is deregistered and purged without a drain, and Destroy
// returns once their allocations stopped.
func (r *Runtime) Destroy(ctx context.Context, app string) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := validApp(app); err != nil {
		return err
	}
	ids, err := r.appJobs(ctx, app)
	if err != nil {
		return fmt.Errorf("destroy %s: %w", app, err)
	}
	for _, id := range ids {
		_, _, err := r.c.jobs.DeregisterOpts(id, &api.DeregisterOptions{Purge: true, NoShutdownDelay: true}, wopts(ctx))
		if err != nil && !notFound(err) {
			return fmt.Errorf("destroy %s: %w", app, r.nomadErr("purge job "+id, err))
		}
	}
	if len(ids) > 0 {
		r.log.Info("app destroyed", "app", app, "jobs", len(ids))
	}
	if err := r.waitGone(ctx, appJobsFilter(app)); err != nil {
		return fmt.Errorf("destroy %s: %w", app, err)
	}
	return nil
}
