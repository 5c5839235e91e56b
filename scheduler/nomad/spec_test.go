package nomad

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

func testRelease() scheduler.Release {
	return scheduler.Release{
		App:     "shop",
		Version: 7,
		Image:   "registry.local/shop@sha256:abc",
		Env:     map[string]string{"FOO": "bar", "PORT": "80"},
		Processes: []scheduler.Process{
			{Name: "web", Count: 3, Check: scheduler.Check{Type: scheduler.CheckHTTP, Path: "/healthz", Interval: 2 * time.Second, Timeout: 3 * time.Second}},
			{Name: "worker", Command: "bundle exec sidekiq", Count: 1, MemoryMB: 512, CPU: 250},
		},
		KillTimeout: 5 * time.Second,
	}
}

func testOptions() jobOptions {
	return jobOptions{Datacenters: []string{"dc1", "dc2"}, Region: "eu", Namespace: "apps", ShutdownDelay: 3 * time.Second}
}

func group(t *testing.T, job *api.Job, name string) *api.TaskGroup {
	t.Helper()
	for _, g := range job.TaskGroups {
		if *g.Name == name {
			return g
		}
	}
	t.Fatalf("job has no group %s", name)
	return nil
}

func TestReleaseJob(t *testing.T) {
	job := releaseJob(testRelease(), testOptions())
	if *job.ID != "berth-shop-v7" || *job.Name != "berth-shop-v7" || *job.Type != "service" {
		t.Fatalf("job ID %q name %q type %q", *job.ID, *job.Name, *job.Type)
	}
	if *job.Region != "eu" || *job.Namespace != "apps" || !slices.Equal(job.Datacenters, []string{"dc1", "dc2"}) {
		t.Fatalf("region %q namespace %q datacenters %v", *job.Region, *job.Namespace, job.Datacenters)
	}
	if diff := cmp.Diff(map[string]string{"berth_app": "shop", "berth_release": "7"}, job.Meta); diff != "" {
		t.Errorf("job meta (-want +got):\n%s", diff)
	}
	if len(job.TaskGroups) != 2 {
		t.Fatalf("%d groups", len(job.TaskGroups))
	}

	web := group(t, job, "web")
	if web.MaxClientDisconnect != nil || web.StopAfterClientDisconnect != nil || web.Disconnect != nil {
		// Allocations of a lost node must be replaced at once (TestLostNode).
		t.Errorf("web has a disconnect policy: %v %v %+v", web.MaxClientDisconnect, web.StopAfterClientDisconnect, web.Disconnect)
	}
	if *web.Count != 3 || web.Meta["berth_check"] != "http" {
		t.Errorf("web count %d meta %v", *web.Count, web.Meta)
	}
	if len(web.Networks) != 1 || len(web.Networks[0].DynamicPorts) != 1 ||
		web.Networks[0].DynamicPorts[0] != (api.Port{Label: "http", To: 5000}) || web.Networks[0].Mode != "" {
		t.Errorf("web network %+v: want one dynamic port http to 5000 in the default (host) mode", web.Networks)
	}
	if len(web.Services) != 1 {
		t.Fatalf("web services %+v", web.Services)
	}
	s := web.Services[0]
	if s.Name != "berth-shop-web" || s.Provider != "consul" || s.PortLabel != "http" {
		t.Errorf("service %q provider %q port %q", s.Name, s.Provider, s.PortLabel)
	}
	if want := []string{"berth", "app=shop", "process=web", "release=7"}; !slices.Equal(s.Tags, want) {
		t.Errorf("tags %v, want %v", s.Tags, want)
	}
	wantCheck := api.ServiceCheck{Name: "http /healthz", Type: "http", Path: "/healthz", Method: "GET",
		Interval: 2 * time.Second, Timeout: 3 * time.Second, FailuresBeforeCritical: 3, InitialStatus: "warning"}
	if len(s.Checks) != 1 || !cmp.Equal(s.Checks[0], wantCheck) {
		t.Errorf("checks %+v, want %+v", s.Checks, wantCheck)
	}
	u := web.Update
	if *u.MaxParallel != 1 || *u.HealthCheck != "checks" || *u.MinHealthyTime != time.Second ||
		!*u.AutoRevert || *u.Canary != 1 || !*u.AutoPromote || *u.HealthyDeadline >= *u.ProgressDeadline {
		t.Errorf("update %+v", u)
	}
	if rp := web.RestartPolicy; *rp.Attempts != 2 || *rp.Interval != 30*time.Second || *rp.Delay != time.Second || *rp.Mode != "fail" {
		t.Errorf("restart policy %+v", rp)
	}
	if rp := web.ReschedulePolicy; !*rp.Unlimited || *rp.Delay != 5*time.Second || *rp.DelayFunction != "exponential" {
		t.Errorf("reschedule policy %+v", rp)
	}

	wt := web.Tasks[0]
	if wt.Name != "web" || wt.Driver != "docker" {
		t.Errorf("web task %q driver %q", wt.Name, wt.Driver)
	}
	wantCfg := map[string]any{
		"image":      "registry.local/shop@sha256:abc",
		"force_pull": false,
		"init":       true,
		"ports":      []string{"http"},
		"labels":     []map[string]string{{"berth.app": "shop", "berth.release": "7", "berth.process": "web"}},
	}
	if diff := cmp.Diff(wantCfg, wt.Config); diff != "" {
		t.Errorf("web config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"FOO": "bar", "PORT": "5000"}, wt.Env); diff != "" {
		t.Errorf("env: the runtime decides PORT (-want +got):\n%s", diff)
	}
	if *wt.Resources.MemoryMB != 256 || *wt.Resources.CPU != 100 {
		t.Errorf("web resources %d MB %d MHz, want the defaults 256/100", *wt.Resources.MemoryMB, *wt.Resources.CPU)
	}
	if *wt.KillTimeout != 5*time.Second || wt.ShutdownDelay != 3*time.Second {
		t.Errorf("kill timeout %s shutdown delay %s", *wt.KillTimeout, wt.ShutdownDelay)
	}
	if web.ShutdownDelay != nil {
		t.Errorf("group shutdown delay %s: the delay is the task's, so an in-place update reaches a stopping task", *web.ShutdownDelay)
	}

	worker := group(t, job, "worker")
	if worker.Meta["berth_check"] != "none" || len(worker.Networks) != 0 || len(worker.Services) != 0 {
		t.Errorf("worker: meta %v networks %v services %v; want no port and no service", worker.Meta, worker.Networks, worker.Services)
	}
	wk := worker.Tasks[0]
	if diff := cmp.Diff([]string{"/bin/sh", "-c"}, wk.Config["entrypoint"]); diff != "" {
		t.Errorf("worker entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bundle exec sidekiq"}, wk.Config["args"]); diff != "" {
		t.Errorf("worker args (-want +got):\n%s", diff)
	}
	if _, ok := wk.Config["ports"]; ok {
		t.Error("worker publishes a port")
	}
	if *wk.Resources.MemoryMB != 512 || *wk.Resources.CPU != 250 {
		t.Errorf("worker resources %d MB %d MHz", *wk.Resources.MemoryMB, *wk.Resources.CPU)
	}
}

func TestReleaseJobChecks(t *testing.T) {
	rel := scheduler.Release{App: "a", Version: 1, Image: "img", Processes: []scheduler.Process{
		{Name: "web", Count: 1, Check: scheduler.Check{Type: scheduler.CheckNone}},
		{Name: "api", Count: 1, Check: scheduler.Check{Type: scheduler.CheckTCP}},
		{Name: "admin", Count: 1}, // DefaultCheck: none for non-web
		{Name: "other", Count: 1, Check: scheduler.Check{Type: scheduler.CheckHTTP}},
	}}
	job := releaseJob(rel, jobOptions{})
	// web without a check still gets a port and a service (routers find it
	// in Consul), with no check.
	if web := group(t, job, "web"); len(web.Services) != 1 || len(web.Services[0].Checks) != 0 || len(web.Networks) != 1 {
		t.Errorf("web with CheckNone: services %+v networks %+v", web.Services, web.Networks)
	}
	ag := group(t, job, "api")
	if len(ag.Services) != 1 || len(ag.Services[0].Checks) != 1 {
		t.Fatalf("api services %+v", ag.Services)
	}
	if c := ag.Services[0].Checks[0]; c.Type != "tcp" || c.Path != "" || c.Interval != time.Second || c.Timeout != 2*time.Second {
		t.Errorf("tcp check %+v: want the default interval 1s and timeout 2s", c)
	}
	if g := group(t, job, "admin"); len(g.Services) != 0 || g.Meta["berth_check"] != "none" {
		t.Errorf("admin: services %+v meta %v", g.Services, g.Meta)
	}
	if c := group(t, job, "other").Services[0].Checks[0]; c.Type != "http" || c.Path != "/" {
		t.Errorf("http check without a path: %+v, want path /", c)
	}
	if *group(t, job, "web").Tasks[0].KillTimeout != 10*time.Second {
		t.Error("default kill timeout is not 10s")
	}
}

func TestReleaseJobNoInitAndRestarts(t *testing.T) {
	o := testOptions()
	o.NoInit = true
	o.Restarts = map[string]string{"web": "2026-01-01T00:00:00Z"}
	job := releaseJob(testRelease(), o)
	if _, ok := group(t, job, "web").Tasks[0].Config["init"]; ok {
		t.Error("init set with NoInit")
	}
	if got := group(t, job, "web").Meta["berth_restart"]; got != "2026-01-01T00:00:00Z" {
		t.Errorf("web berth_restart %q", got)
	}
	if _, ok := group(t, job, "worker").Meta["berth_restart"]; ok {
		t.Error("worker got web's restart")
	}
	if got := restartsOf(job); !cmp.Equal(got, o.Restarts) {
		t.Errorf("restartsOf %v", got)
	}
}

// serverCopy is job as a server returns it: through JSON (lists in the
// driver config become []any), with defaults filled in.
func serverCopy(t *testing.T, job *api.Job) *api.Job {
	t.Helper()
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	var out api.Job
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	out.Canonicalize()
	out.Version = new(uint64(3))
	out.Status = new("running")
	for _, g := range out.TaskGroups {
		g.Meta["nomad_default"] = "x" // not berth's: ignored
	}
	return &out
}

func TestSameSpec(t *testing.T) {
	rel := testRelease()
	job := releaseJob(rel, testOptions())
	if !sameSpec(serverCopy(t, job), releaseJob(rel, testOptions())) {
		t.Fatalf("a job as the server returns it is not the same spec:\n%s\n%s", project(serverCopy(t, job)), project(job))
	}
	changed := map[string]func(*scheduler.Release, *jobOptions){
		"count":          func(r *scheduler.Release, _ *jobOptions) { r.Processes[0].Count = 4 },
		"memory":         func(r *scheduler.Release, _ *jobOptions) { r.Processes[1].MemoryMB = 1024 },
		"check path":     func(r *scheduler.Release, _ *jobOptions) { r.Processes[0].Check.Path = "/up" },
		"kill timeout":   func(r *scheduler.Release, _ *jobOptions) { r.KillTimeout = time.Minute },
		"shutdown delay": func(_ *scheduler.Release, o *jobOptions) { o.ShutdownDelay = 30 * time.Second },
		"restart":        func(_ *scheduler.Release, o *jobOptions) { o.Restarts = map[string]string{"web": "now"} },
		"datacenters":    func(_ *scheduler.Release, o *jobOptions) { o.Datacenters = []string{"dc1"} },
	}
	for name, change := range changed {
		r2 := testRelease()
		o2 := testOptions()
		change(&r2, &o2)
		if sameSpec(serverCopy(t, job), releaseJob(r2, o2)) {
			t.Errorf("changing the %s is not a different spec", name)
		}
	}
}

func TestJobIDs(t *testing.T) {
	if got := jobID("shop", 12); got != "berth-shop-v12" {
		t.Errorf("jobID %q", got)
	}
	run := runJobID("shop")
	if !strings.HasPrefix(run, "berth-shop-run-") || len(run) != len("berth-shop-run-")+12 {
		t.Errorf("runJobID %q", run)
	}
	cases := []struct {
		app, id string
		version uint64
		run, ok bool
	}{
		{"shop", "berth-shop-v12", 12, false, true},
		{"shop", run, 0, true, true},
		{"shop", "berth-shop-v", 0, false, false},
		{"shop", "berth-shop-v012", 0, false, false},
		{"shop", "berth-shop-v1x", 0, false, false},
		{"shop", "berth-shopx-v1", 0, false, false},
		// Apps whose names extend another's: their jobs are not the other's.
		{"a", "berth-a-v1-v2", 0, false, false},
		{"a", "berth-a-run-v1", 0, false, false},
		{"a", "berth-a-run-run-0123456789ab", 0, false, false},
		{"a-run", "berth-a-run-run-0123456789ab", 0, true, true},
		{"a-v1", "berth-a-v1-v2", 2, false, true},
		{"shop", "other", 0, false, false},
	}
	for _, c := range cases {
		v, isRun, ok := parseJobID(c.app, c.id)
		if v != c.version || isRun != c.run || ok != c.ok {
			t.Errorf("parseJobID(%q, %q) = %d, %v, %v; want %d, %v, %v", c.app, c.id, v, isRun, ok, c.version, c.run, c.ok)
		}
	}
	if f := releaseJobsFilter("shop"); f != `JobID matches "^berth-shop-v[0-9]+$"` {
		t.Errorf("filter %s", f)
	}
}

func TestAllocIndex(t *testing.T) {
	for name, want := range map[string]int{
		"berth-shop-v1.web[0]":   1,
		"berth-shop-v1.web[11]":  12,
		"berth-a-v1.worker[2]":   3,
		"berth-shop-v1.web":      0,
		"berth-shop-v1.web[x]":   0,
		"berth-shop-v1.web[-1]":  0,
		"weird[1].name.web[4]":   5,
		"berth-shop-v1.web[3]  ": 0,
	} {
		if got := allocIndex(name); got != want {
			t.Errorf("allocIndex(%q) = %d, want %d", name, got, want)
		}
	}
}

func TestRunJob(t *testing.T) {
	rel := testRelease()
	direct := runJob("berth-shop-run-0123456789ab", rel, []string{"/bin/rake", "db:migrate"}, runDirect, testOptions())
	if *direct.Type != "batch" || direct.Meta["berth_run"] != "true" || len(direct.TaskGroups) != 1 {
		t.Fatalf("run job %+v", direct)
	}
	g := direct.TaskGroups[0]
	if *g.RestartPolicy.Attempts != 0 || *g.ReschedulePolicy.Attempts != 0 || *g.ReschedulePolicy.Unlimited {
		t.Errorf("a one-off job restarts or reschedules: %+v %+v", g.RestartPolicy, g.ReschedulePolicy)
	}
	task := g.Tasks[0]
	if diff := cmp.Diff([]string{"/bin/rake"}, task.Config["entrypoint"]); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"db:migrate"}, task.Config["args"]); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if task.Env["PORT"] != "5000" || task.Env["FOO"] != "bar" || len(g.Services) != 0 {
		t.Errorf("env %v services %v", task.Env, g.Services)
	}
	exec := runJob("berth-shop-run-0123456789ab", rel, []string{"/bin/cat"}, runExec, testOptions())
	et := exec.TaskGroups[0].Tasks[0]
	if diff := cmp.Diff([]string{"/bin/sh", "-c"}, et.Config["entrypoint"]); diff != "" {
		t.Errorf("exec entrypoint (-want +got):\n%s", diff)
	}
	if args := et.Config["args"].([]string); len(args) != 1 || !strings.Contains(args[0], "sleep") {
		t.Errorf("exec args %v", args)
	}
}

func TestValidRelease(t *testing.T) {
	bad := map[string]func(*scheduler.Release){
		"app name":       func(r *scheduler.Release) { r.App = "Shop; rm -rf /" },
		"no image":       func(r *scheduler.Release) { r.Image = "" },
		"process name":   func(r *scheduler.Release) { r.Processes[0].Name = "web.1" },
		"twice":          func(r *scheduler.Release) { r.Processes[1].Name = "web" },
		"negative count": func(r *scheduler.Release) { r.Processes[0].Count = -1 },
		"check type":     func(r *scheduler.Release) { r.Processes[0].Check.Type = "grpc" },
	}
	for name, f := range bad {
		rel := testRelease()
		f(&rel)
		if err := validRelease(rel); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := validRelease(testRelease()); err != nil {
		t.Fatal(err)
	}
}
