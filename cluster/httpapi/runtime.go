package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/deployer"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/berthpaas/berth/scheduler"
	"github.com/hashicorp/go-memdb"
)

// DefaultMaxScale caps the instances of one process type.
const DefaultMaxScale = 100

var (
	errNoRuntime  = errors.New("this server runs no runtime (no Docker engine, and --runtime nomad not configured)")
	processNameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,29}$`)
)

func (a *API) runtime() (scheduler.Runtime, error) {
	if a.cfg.Runtime == nil {
		return nil, &api.Error{Code: api.CodeUnavailable, Message: errNoRuntime.Error()}
	}
	return a.cfg.Runtime, nil
}

// activeSpec is what the runtime runs for the app's active release.
func (a *API) activeSpec(snap *state.Snapshot, name string) (scheduler.Release, error) {
	app, _, err := snap.App(nil, name)
	if err != nil {
		return scheduler.Release{}, err
	}
	if app.ActiveRelease == 0 {
		return scheduler.Release{}, &api.Error{Code: api.CodeConflict, Message: fmt.Sprintf("%s has no running release yet: git push berth main, or berth deploy -a %s", name, name)}
	}
	rel, _, err := snap.Release(nil, name, app.ActiveRelease)
	if err != nil {
		return scheduler.Release{}, err
	}
	return deployer.Spec(app, rel, a.cfg.Keyring.Load())
}

func (a *API) instancesList(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	if _, _, err := r.snap.App(nil, name); err != nil {
		return err
	}
	rt, err := a.runtime()
	if err != nil {
		return err
	}
	insts, err := rt.Instances(r.Context(), name)
	if err != nil {
		return fmt.Errorf("runtime %s: %w", rt.Name(), err)
	}
	out := []api.Instance{}
	for _, i := range insts {
		out = append(out, api.Instance{ID: i.ID, Name: i.Name(), Process: i.Process, Release: i.Release, Node: i.Node,
			State: i.State, Healthy: i.Healthy, Addr: i.Addr, StartedAt: i.StartedAt, Message: i.Message})
	}
	slices.SortFunc(out, func(x, y api.Instance) int {
		if c := strings.Compare(x.Process, y.Process); c != 0 {
			return c
		}
		return strings.Compare(x.Name, y.Name)
	})
	writeJSON(w, http.StatusOK, out)
	return nil
}

// processesOf returns the process types of the app's active (or latest) release.
func processesOf(snap *state.Snapshot, app *state.App) []string {
	v := app.ActiveRelease
	if v == 0 {
		v = app.LatestRelease
	}
	rel, _, err := snap.Release(nil, app.Name, v)
	if err != nil {
		return nil
	}
	if len(rel.Processes) == 0 {
		return []string{"web"}
	}
	var out []string
	for n := range rel.Processes {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (a *API) formationScale(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	var req api.ScaleRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	app, _, err := r.snap.App(nil, name)
	if err != nil {
		return err
	}
	if len(req.Counts) == 0 {
		return badRequest("nothing to scale: give process=count, e.g. web=2")
	}
	known := processesOf(r.snap, app)
	if len(known) == 0 {
		return &api.Error{Code: api.CodeConflict, Message: fmt.Sprintf("%s has no release yet; deploy it before scaling", name)}
	}
	maxScale := a.cfg.MaxScale
	if maxScale == 0 {
		maxScale = DefaultMaxScale
	}
	var detail []string
	for p, n := range req.Counts {
		if !processNameRe.MatchString(p) || !slices.Contains(known, p) {
			return badRequest("unknown process type %q; %s has: %s", clipName(p), name, strings.Join(known, ", "))
		}
		if n < 0 || n > maxScale {
			return badRequest("%s=%d: counts go from 0 to %d (the server's max_scale)", p, n, maxScale)
		}
		detail = append(detail, fmt.Sprintf("%s=%d", p, n))
	}
	if req.MemoryMB < 0 || req.MemoryMB > 1<<20 || req.CPU < 0 || req.CPU > 1<<20 {
		return badRequest("memory_mb and cpu must be positive and sane")
	}
	var res map[string]state.Resources
	if req.MemoryMB > 0 || req.CPU > 0 {
		res = map[string]state.Resources{}
		for p := range req.Counts {
			cur := app.Resources[p]
			if req.MemoryMB > 0 {
				cur.MemoryMB = req.MemoryMB
			}
			if req.CPU > 0 {
				cur.CPU = req.CPU
			}
			res[p] = cur
		}
	}
	slices.Sort(detail)
	out, _, err := r.apply(fsm.Scale{Audited: r.audit(id, "ps.scale", name, strings.Join(detail, " ")), App: name, Counts: req.Counts, Resources: res})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Formation{App: name, Counts: out.(*state.App).Formation})
	return nil
}

func clipName(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func (a *API) checksSet(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	proc := r.PathValue("process")
	if !processNameRe.MatchString(proc) {
		return badRequest("invalid process type %q", clipName(proc))
	}
	var req api.CheckRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	c := state.Check{Type: req.Type, Path: req.Path}
	switch req.Type {
	case scheduler.CheckHTTP:
		if c.Path == "" {
			c.Path = "/"
		}
		if !strings.HasPrefix(c.Path, "/") || len(c.Path) > 512 || strings.ContainsAny(c.Path, " \t\r\n") {
			return badRequest("check path must start with / and contain no spaces")
		}
	case scheduler.CheckTCP, scheduler.CheckNone:
		if c.Path != "" {
			return badRequest("only http checks have a path")
		}
	default:
		return badRequest("check type must be http, tcp or none")
	}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{req.Interval, &c.Interval}, {req.Timeout, &c.Timeout}} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v < 100*time.Millisecond || v > 5*time.Minute {
			return badRequest("durations are like 1s or 500ms, between 100ms and 5m, not %q", d.s)
		}
		*d.dst = v
	}
	if _, _, err := r.apply(fsm.CheckSet{Audited: r.audit(id, "checks.set", name, proc+" "+c.Type+" "+c.Path), App: name, Process: proc, Check: c}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func toAPIDeploy(d *state.Deploy) api.Deploy {
	out := api.Deploy{ID: d.ID, App: d.App, From: d.From, To: d.To, State: d.State, Reason: d.Reason, Steps: []api.DeployStep{}}
	for _, s := range d.Steps {
		out.Steps = append(out.Steps, api.DeployStep{State: s.State, At: s.At, Note: s.Note})
	}
	return out
}

func (a *API) deploysList(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		if _, _, err := snap.App(ws, name); err != nil {
			return nil, 0, err
		}
		deps, idx, err := snap.Deploys(ws, name)
		out := []api.Deploy{}
		for _, d := range deps {
			out = append(out, toAPIDeploy(d))
		}
		return out, idx, err
	})
}

func (a *API) appRestart(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	var req api.RestartRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	rt, err := a.runtime()
	if err != nil {
		return err
	}
	spec, err := a.activeSpec(r.snap, name)
	if err != nil {
		return err
	}
	if req.Process != "" && !slices.ContainsFunc(spec.Processes, func(p scheduler.Process) bool { return p.Name == req.Process }) {
		return badRequest("unknown process type %q", clipName(req.Process))
	}
	if err := rt.Restart(r.Context(), spec, req.Process); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if _, _, err := r.apply(fsm.AuditRecord{Audited: r.audit(id, "ps.restart", name, req.Process)}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) appLogs(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	if _, _, err := r.snap.App(nil, name); err != nil {
		return err
	}
	rt, err := a.runtime()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	opts := scheduler.LogOptions{Process: q.Get("process"), Follow: q.Get("follow") == "true"}
	if opts.Process != "" && !processNameRe.MatchString(opts.Process) {
		return badRequest("invalid process type %q", clipName(opts.Process))
	}
	if s := q.Get("lines"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100000 {
			return badRequest("lines must be between 1 and 100000")
		}
		opts.Tail = n
	}
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return badRequest("since must be a duration like 10m")
		}
		opts.Since = time.Now().Add(-d)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fw := &flushWriter{w: w, rc: http.NewResponseController(w)}
	emit := func(l scheduler.LogLine) {
		fmt.Fprintf(fw, "%s %s: %s\n", l.Time.UTC().Format(time.RFC3339Nano), l.Instance, strings.TrimRight(l.Text, "\n"))
	}
	var kept []scheduler.LogLine
	collect := emit
	if !opts.Follow {
		// Merge by time; the runtime tails each instance, and -n is a
		// total over the merged log.
		collect = func(l scheduler.LogLine) { kept = append(kept, l) }
	}
	// The routers' lines (process "router") come from this server's
	// memory; the rest from the runtime.
	withRouter := opts.Process == "" || opts.Process == "router"
	if withRouter && !opts.Follow {
		for _, l := range a.routerLogs.since(name, opts.Since) {
			collect(l)
		}
	}
	var mu sync.Mutex // emits come from the runtime and the router subscription
	locked := func(l scheduler.LogLine) {
		mu.Lock()
		defer mu.Unlock()
		collect(l)
	}
	if withRouter && opts.Follow {
		for _, l := range a.routerLogs.since(name, time.Now().Add(-10*time.Second)) {
			locked(l)
		}
		lines, cancel := a.routerLogs.subscribe(name)
		defer cancel()
		go func() {
			for {
				select {
				case l := <-lines:
					locked(l)
				case <-r.Context().Done():
					return
				}
			}
		}()
	}
	if opts.Process == "router" {
		if opts.Follow {
			<-r.Context().Done()
		}
	} else {
		err = rt.Logs(r.Context(), name, opts, locked)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.SortStableFunc(kept, func(x, y scheduler.LogLine) int { return x.Time.Compare(y.Time) })
	if opts.Tail > 0 && len(kept) > opts.Tail {
		kept = kept[len(kept)-opts.Tail:]
	}
	for _, l := range kept {
		emit(l)
	}
	if err != nil && r.Context().Err() == nil {
		fmt.Fprintf(fw, "berth: logs ended: %v\n", err)
	}
	return nil
}

func (a *API) appRun(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	cmd := r.URL.Query()["cmd"]
	if len(cmd) == 0 || cmd[0] == "" {
		return badRequest("no command: berth run -a APP -- CMD ARGS...")
	}
	rt, err := a.runtime()
	if err != nil {
		return err
	}
	spec, err := a.activeSpec(r.snap, name)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.AuditRecord{Audited: r.audit(id, "run", name, strings.Join(cmd, " "))}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", api.HeaderExitCode)
	w.WriteHeader(http.StatusOK)
	fw := &flushWriter{w: w, rc: rc}
	code, err := rt.Run(r.Context(), spec, scheduler.RunOptions{Command: cmd, Stdin: r.Body, Stdout: fw, Stderr: fw, Detach: r.URL.Query().Get("detach") == "true"})
	if err != nil {
		fmt.Fprintf(fw, "berth: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	w.Header().Set(api.HeaderExitCode, strconv.Itoa(code))
	return nil
}
