package nomad

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// Meta keys on berth's jobs and task groups.
const (
	metaApp     = "berth_app"     // job: the app
	metaRelease = "berth_release" // job: the release version
	metaRun     = "berth_run"     // job: "true" on one-off jobs of Run
	metaCheck   = "berth_check"   // group: the check type of the process
	metaRestart = "berth_restart" // group: bumped by Restart to replace the group's allocations
)

// Defaults of a process that sets no limits, and of a release without a
// kill timeout (the same as the docker runtime's).
const (
	defaultMemoryMB    = 256
	defaultCPU         = 100 // MHz
	defaultKillTimeout = 10 * time.Second
	defaultInterval    = time.Second
	defaultTimeout     = 2 * time.Second
)

// Update stanza of every group. Nomad's own deployments do the rolling work
// of Restart and resource changes; see DESIGN.md.
const (
	minHealthyTime   = time.Second
	healthyDeadline  = 3 * time.Minute
	progressDeadline = 5 * time.Minute
)

// Restart and reschedule policies of instances: a crashing task is
// restarted twice within 30 s, then its allocation fails and is
// rescheduled (possibly on another node) with an exponential back-off.
const (
	restartAttempts   = 2
	restartInterval   = 30 * time.Second
	restartDelay      = time.Second
	rescheduleDelay   = 5 * time.Second
	rescheduleMaxWait = time.Minute
)

// initialStatus is the status of a new instance's checks. Not passing, so
// it takes no traffic; not critical, because Consul agents send a check's
// output to the servers only when its status changes (or every
// check_update_interval, 5 min): from "critical" to a failing "critical"
// the reason would not show.
const initialStatus = "warning"

// portLabel is the name of the dynamic port every published process gets;
// it maps to $PORT (5000) in the container.
const portLabel = "http"

// runSleep is what the task of an attached Run with stdin runs while the
// command is executed into it: a year, longer than any one-off command.
const runSleep = "exec sleep 31536000"

// ErrInvalid is scheduler.ErrInvalid: a malformed release or name.
var ErrInvalid = scheduler.ErrInvalid

func validApp(app string) error { return scheduler.ValidateApp(app) }

func validRelease(rel scheduler.Release) error { return scheduler.ValidateRelease(rel) }

// jobID is the Nomad job of one release: berth-APP-vVERSION.
func jobID(app string, version uint64) string {
	return "berth-" + app + "-v" + strconv.FormatUint(version, 10)
}

// jobPrefix is what every job of app starts with (release and run jobs).
// Other apps' jobs may start with it too (app "a" and app "a-b"); parseJobID
// tells them apart.
func jobPrefix(app string) string { return "berth-" + app + "-" }

// runIDLen is the length of the random part of a run job's ID.
const runIDLen = 12

// runJobID is a one-off job of Run: berth-APP-run-RANDOM.
func runJobID(app string) string {
	b := make([]byte, runIDLen/2)
	_, _ = rand.Read(b)
	return jobPrefix(app) + "run-" + hex.EncodeToString(b)
}

// parseJobID tells whether id is one of app's jobs: a release's (with its
// version) or a run's. App names may contain "-v" and "-run-", so the rest
// after the app's prefix must match exactly.
func parseJobID(app, id string) (version uint64, run, ok bool) {
	rest, found := strings.CutPrefix(id, jobPrefix(app))
	if !found {
		return 0, false, false
	}
	if r, isRun := strings.CutPrefix(rest, "run-"); isRun && len(r) == runIDLen && isHex(r) {
		return 0, true, true
	}
	digits, found := strings.CutPrefix(rest, "v")
	if !found || digits == "" || strings.TrimLeft(digits, "0123456789") != "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false, false
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return v, false, true
}

func isHex(s string) bool {
	return strings.TrimLeft(s, "0123456789abcdef") == ""
}

// releaseJobsFilter selects the allocations of app's release jobs on the
// Nomad server (a go-bexpr expression; app names need no quoting).
func releaseJobsFilter(app string) string {
	return fmt.Sprintf(`JobID matches "^berth-%s-v[0-9]+$"`, app)
}

// appJobsFilter selects the allocations of all of app's jobs.
func appJobsFilter(app string) string {
	return fmt.Sprintf(`JobID matches "^berth-%s-(v[0-9]+|run-[0-9a-f]{%d})$"`, app, runIDLen)
}

// serviceName is the Consul service of an app's process, shared by its
// releases (told apart by the release tag).
func serviceName(app, process string) string { return "berth-" + app + "-" + process }

// Consul tags of a service instance. Routers select an app's active
// release with the release tag.
func serviceTags(app, process string, version uint64) []string {
	return []string{"berth", "app=" + app, "process=" + process, "release=" + strconv.FormatUint(version, 10)}
}

// appTag is the tag that selects all of an app's service instances.
func appTag(app string) string { return "app=" + app }

// allocIndex is the 1-based index of an allocation within its group, from
// its name "JOB.GROUP[N]".
func allocIndex(name string) int {
	open := strings.LastIndexByte(name, '[')
	if open < 0 || !strings.HasSuffix(name, "]") {
		return 0
	}
	n, err := strconv.Atoi(name[open+1 : len(name)-1])
	if err != nil || n < 0 {
		return 0
	}
	return n + 1
}

// checkOf is p's check with defaults filled in.
func checkOf(p scheduler.Process) scheduler.Check {
	c := p.Check
	if c.Type == "" {
		c = scheduler.DefaultCheck(p.Name)
	}
	if c.Interval <= 0 {
		c.Interval = defaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	if c.Type == scheduler.CheckHTTP && c.Path == "" {
		c.Path = "/"
	}
	if c.Type != scheduler.CheckHTTP {
		c.Path = ""
	}
	return c
}

// published says whether a process gets a port and a Consul service: web
// (routers find it in Consul even without a check), and any process Consul
// checks over the network.
func published(process string, c scheduler.Check) bool {
	return process == "web" || c.Type != scheduler.CheckNone
}

func killTimeout(rel scheduler.Release) time.Duration {
	if rel.KillTimeout <= 0 {
		return defaultKillTimeout
	}
	return rel.KillTimeout
}

// environment is rel's config plus PORT; the runtime decides the port.
func environment(rel scheduler.Release) map[string]string {
	env := make(map[string]string, len(rel.Env)+1)
	maps.Copy(env, rel.Env)
	env["PORT"] = strconv.Itoa(scheduler.Port)
	return env
}

// jobOptions are the parts of a release's job that do not come from the
// release.
type jobOptions struct {
	Datacenters []string
	Region      string
	Namespace   string
	// ShutdownDelay is how long a stopped instance stays up after it left
	// Consul, before SIGTERM (scale-down, Restart, StopRelease).
	ShutdownDelay time.Duration
	// Restarts holds each group's berth_restart meta, carried over from the
	// running job so that Start does not undo a Restart.
	Restarts map[string]string
	// NoInit runs containers without Docker's init process.
	NoInit bool
}

// releaseJob is the Nomad job of rel: one service job per release, one
// task group per process with its formation as count. It is pure; Start
// registers it.
func releaseJob(rel scheduler.Release, o jobOptions) *api.Job {
	id := jobID(rel.App, rel.Version)
	job := &api.Job{
		ID:          new(id),
		Name:        new(id),
		Type:        new("service"),
		Datacenters: slices.Clone(o.Datacenters),
		Meta: map[string]string{
			metaApp:     rel.App,
			metaRelease: strconv.FormatUint(rel.Version, 10),
		},
	}
	if o.Region != "" {
		job.Region = new(o.Region)
	}
	if o.Namespace != "" {
		job.Namespace = new(o.Namespace)
	}
	kt := killTimeout(rel)
	for _, p := range rel.Processes {
		check := checkOf(p)
		g := &api.TaskGroup{
			Name:  new(p.Name),
			Count: new(p.Count),
			Meta:  map[string]string{metaCheck: check.Type},
			RestartPolicy: &api.RestartPolicy{
				Attempts: new(restartAttempts),
				Interval: new(restartInterval),
				Delay:    new(restartDelay),
				Mode:     new("fail"),
			},
			// Failed allocations are rescheduled with this back-off. Those
			// of a lost node (down: missed heartbeats) are replaced at once,
			// whatever the policy says, because the group sets no
			// max_client_disconnect (which would keep them "unknown" and
			// wait for the node to come back); TestLostNode measures it.
			ReschedulePolicy: &api.ReschedulePolicy{
				Attempts:      new(0),
				Unlimited:     new(true),
				Delay:         new(rescheduleDelay),
				DelayFunction: new("exponential"),
				MaxDelay:      new(rescheduleMaxWait),
			},
			Update: &api.UpdateStrategy{
				MaxParallel:      new(1),
				HealthCheck:      new("checks"),
				MinHealthyTime:   new(minHealthyTime),
				HealthyDeadline:  new(healthyDeadline),
				ProgressDeadline: new(progressDeadline),
				AutoRevert:       new(true),
				Canary:           new(1),
				AutoPromote:      new(true),
			},
		}
		if r := o.Restarts[p.Name]; r != "" {
			g.Meta[metaRestart] = r
		}
		task := &api.Task{
			Name:   p.Name,
			Driver: "docker",
			Config: dockerConfig(rel, p.Name, o.NoInit),
			Env:    environment(rel),
			Resources: &api.Resources{
				CPU:      new(cmpOr(p.CPU, defaultCPU)),
				MemoryMB: new(cmpOr(p.MemoryMB, defaultMemoryMB)),
			},
			KillTimeout:   new(kt),
			ShutdownDelay: o.ShutdownDelay,
			LogConfig:     &api.LogConfig{MaxFiles: new(3), MaxFileSizeMB: new(10)},
		}
		if p.Command != "" {
			// Procfile commands are shell text, as on Heroku; the image needs
			// /bin/sh (buildpack images have it). The entrypoint is replaced,
			// not only the CMD, as in the docker runtime.
			task.Config["entrypoint"] = []string{"/bin/sh", "-c"}
			task.Config["args"] = []string{p.Command}
		}
		if published(p.Name, check) {
			g.Networks = []*api.NetworkResource{{
				DynamicPorts: []api.Port{{Label: portLabel, To: scheduler.Port}},
			}}
			task.Config["ports"] = []string{portLabel}
			g.Services = []*api.Service{service(rel.App, p.Name, rel.Version, check)}
		}
		g.Tasks = []*api.Task{task}
		job.TaskGroups = append(job.TaskGroups, g)
	}
	return job
}

// dockerConfig is the docker driver's config of a task of rel.
func dockerConfig(rel scheduler.Release, process string, noInit bool) map[string]any {
	c := map[string]any{
		"image": rel.Image,
		// Images are pinned by digest and come from the cluster's registry
		// (through the node's mirror); a present image is never pulled again.
		"force_pull": false,
		// A block in the driver's schema: a list of one map in JSON.
		"labels": []map[string]string{{
			"berth.app":     rel.App,
			"berth.release": strconv.FormatUint(rel.Version, 10),
			"berth.process": process,
		}},
	}
	if !noInit {
		// An init process forwards SIGTERM to `/bin/sh -c` commands and
		// reaps zombies, as in the docker runtime.
		c["init"] = true
	}
	return c
}

// service is the Consul service of a published process, with its check
// run by Consul from outside the container.
func service(app, process string, version uint64, c scheduler.Check) *api.Service {
	s := &api.Service{
		Name:      serviceName(app, process),
		Tags:      serviceTags(app, process, version),
		PortLabel: portLabel,
		Provider:  "consul",
	}
	switch c.Type {
	case scheduler.CheckHTTP:
		s.Checks = []api.ServiceCheck{{
			Name:     "http " + c.Path,
			Type:     "http",
			Path:     c.Path,
			Method:   "GET",
			Interval: c.Interval,
			Timeout:  c.Timeout,
			// Healthy after one pass; out after three failures in a row (a
			// slow answer does not flap the router), as the docker runtime.
			FailuresBeforeCritical: 3,
			InitialStatus:          initialStatus,
		}}
	case scheduler.CheckTCP:
		s.Checks = []api.ServiceCheck{{
			Name:                   "tcp",
			Type:                   "tcp",
			Interval:               c.Interval,
			Timeout:                c.Timeout,
			FailuresBeforeCritical: 3,
			InitialStatus:          initialStatus,
		}}
	}
	return s
}

// sameSpec says whether a registered job already is what berth would
// register: it compares the fields berth sets (a projection), not the
// whole job, as the server fills in defaults and newer or older servers
// know other fields. A hash in the job's meta would not do: Nomad merges
// job meta into every task's, so a changed hash would make every change,
// even of a count, replace all allocations.
func sameSpec(a, b *api.Job) bool {
	pa, pb := project(a), project(b)
	return pa != "" && pa == pb
}

// project renders the fields of a job berth sets, canonically.
func project(job *api.Job) string {
	type check struct {
		Type, Path, Method     string
		Interval, Timeout      time.Duration
		FailuresBeforeCritical int
		InitialStatus          string
	}
	type svc struct {
		Name, PortLabel string
		Tags            []string
		Checks          []check
	}
	type task struct {
		Name, Driver  string
		Config        string // JSON: the server returns lists as []any
		Env           map[string]string
		CPU, MemoryMB int
		KillTimeout   time.Duration
		ShutdownDelay time.Duration
	}
	type group struct {
		Name     string
		Count    int
		Meta     map[string]string
		Ports    []api.Port
		Services []svc
		Tasks    []task
	}
	type spec struct {
		Type        string
		Datacenters []string
		Meta        map[string]string
		Groups      []group
	}
	s := spec{Type: deref(job.Type), Datacenters: job.Datacenters, Meta: berthMeta(job.Meta)}
	for _, g := range job.TaskGroups {
		pg := group{Name: deref(g.Name), Count: deref(g.Count), Meta: berthMeta(g.Meta)}
		for _, n := range g.Networks {
			for _, p := range n.DynamicPorts {
				pg.Ports = append(pg.Ports, api.Port{Label: p.Label, To: p.To})
			}
		}
		for _, sv := range g.Services {
			ps := svc{Name: sv.Name, PortLabel: sv.PortLabel, Tags: sv.Tags}
			for _, c := range sv.Checks {
				ps.Checks = append(ps.Checks, check{c.Type, c.Path, c.Method, c.Interval, c.Timeout, c.FailuresBeforeCritical, c.InitialStatus})
			}
			pg.Services = append(pg.Services, ps)
		}
		for _, t := range g.Tasks {
			cfg, err := json.Marshal(t.Config)
			if err != nil {
				return ""
			}
			pt := task{Name: t.Name, Driver: t.Driver, Config: string(cfg), Env: t.Env, ShutdownDelay: t.ShutdownDelay}
			if t.Resources != nil {
				pt.CPU, pt.MemoryMB = deref(t.Resources.CPU), deref(t.Resources.MemoryMB)
			}
			pt.KillTimeout = deref(t.KillTimeout)
			pg.Tasks = append(pg.Tasks, pt)
		}
		s.Groups = append(s.Groups, pg)
	}
	b, err := json.Marshal(s) // maps marshal sorted
	if err != nil {
		return ""
	}
	return string(b)
}

// berthMeta keeps berth's keys of a meta map.
func berthMeta(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(k, "berth_") {
			out[k] = v
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// runMode says how a one-off command runs.
type runMode int

const (
	// runDirect runs the argv as the task itself (its output comes from
	// the task's logs, its exit code from the task's events).
	runDirect runMode = iota
	// runExec runs a sleeping task to exec the argv into, with stdin.
	runExec
)

// runTask is the name of the task (and group) of a run job.
const runTask = "run"

// runJob is a one-off batch job with rel's image and config.
func runJob(id string, rel scheduler.Release, argv []string, mode runMode, o jobOptions) *api.Job {
	job := &api.Job{
		ID:          new(id),
		Name:        new(id),
		Type:        new("batch"),
		Datacenters: slices.Clone(o.Datacenters),
		Meta: map[string]string{
			metaApp:     rel.App,
			metaRelease: strconv.FormatUint(rel.Version, 10),
			metaRun:     "true",
		},
	}
	if o.Region != "" {
		job.Region = new(o.Region)
	}
	if o.Namespace != "" {
		job.Namespace = new(o.Namespace)
	}
	cfg := dockerConfig(rel, runTask, o.NoInit)
	switch mode {
	case runDirect:
		cfg["entrypoint"] = []string{argv[0]}
		if len(argv) > 1 {
			cfg["args"] = slices.Clone(argv[1:])
		}
	case runExec:
		cfg["entrypoint"] = []string{"/bin/sh", "-c"}
		cfg["args"] = []string{runSleep}
	}
	kt := killTimeout(rel)
	if mode == runExec {
		kt = time.Second // the sleeper has nothing to finish
	}
	job.TaskGroups = []*api.TaskGroup{{
		Name:  new(runTask),
		Count: new(1),
		// A one-off command runs once: no restart, no reschedule.
		RestartPolicy:    &api.RestartPolicy{Attempts: new(0), Mode: new("fail")},
		ReschedulePolicy: &api.ReschedulePolicy{Attempts: new(0), Unlimited: new(false)},
		Tasks: []*api.Task{{
			Name:        runTask,
			Driver:      "docker",
			Config:      cfg,
			Env:         environment(rel),
			Resources:   &api.Resources{CPU: new(defaultCPU), MemoryMB: new(defaultMemoryMB)},
			KillTimeout: new(kt),
			LogConfig:   &api.LogConfig{MaxFiles: new(2), MaxFileSizeMB: new(10)},
		}},
	}}
	return job
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// allShutdownDelays says whether every task of job has shutdown delay d.
func allShutdownDelays(job *api.Job, d time.Duration) bool {
	for _, g := range job.TaskGroups {
		for _, t := range g.Tasks {
			if t.ShutdownDelay != d {
				return false
			}
		}
	}
	return true
}

// restartsOf reads each group's berth_restart meta of a running job.
func restartsOf(job *api.Job) map[string]string {
	out := map[string]string{}
	if job == nil {
		return out
	}
	for _, g := range job.TaskGroups {
		if g.Name != nil && g.Meta[metaRestart] != "" {
			out[*g.Name] = g.Meta[metaRestart]
		}
	}
	return out
}
