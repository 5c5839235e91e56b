package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// fakeNomad is a Nomad server that stores jobs (through JSON, as the real
// one returns them), answers every evaluation as complete with a
// successful deployment, and has no allocations. It records the writes.
type fakeNomad struct {
	mu      sync.Mutex
	jobs    map[string]*api.Job
	index   uint64
	evals   map[string]*api.Evaluation
	deploys map[string][]*api.Deployment
	allocs  []*api.AllocationListStub
	// destructive makes Plan report destructive updates.
	destructive bool
	// failDeploy fails the deployments of registrations with this reason.
	failDeploy string

	registered   []*api.Job
	registerOpts []*api.RegisterOptions
	planned      []*api.Job
	deregistered []string // "ID purge=B nodelay=B"
}

type (
	fakeJobs   struct{ *fakeNomad }
	fakeAllocs struct{ *fakeNomad }
	fakeEvals  struct{ *fakeNomad }
)

var (
	_ Jobs        = fakeJobs{}
	_ Allocations = fakeAllocs{}
	_ Evaluations = fakeEvals{}
)

func newFakeNomad() *fakeNomad {
	return &fakeNomad{jobs: map[string]*api.Job{}, evals: map[string]*api.Evaluation{}, deploys: map[string][]*api.Deployment{}}
}

// errNotFound is what the real client reports for a 404.
var errNotFound = errors.New("Unexpected response code: 404 (job not found)")

func roundTrip(job *api.Job) *api.Job {
	b, err := json.Marshal(job)
	if err != nil {
		panic(err)
	}
	var out api.Job
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return &out
}

func (f fakeJobs) Info(id string, _ *api.QueryOptions) (*api.Job, *api.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.jobs[id]
	if j == nil {
		return nil, nil, errNotFound
	}
	return roundTrip(j), &api.QueryMeta{}, nil
}

func (f fakeJobs) List(q *api.QueryOptions) ([]*api.JobListStub, *api.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*api.JobListStub
	for id := range f.jobs {
		if strings.HasPrefix(id, q.Prefix) {
			out = append(out, &api.JobListStub{ID: id})
		}
	}
	return out, &api.QueryMeta{}, nil
}

func (f fakeJobs) RegisterOpts(job *api.Job, opts *api.RegisterOptions, _ *api.WriteOptions) (*api.JobRegisterResponse, *api.WriteMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := *job.ID
	old := f.jobs[id]
	if opts != nil && opts.EnforceIndex && (old == nil || *old.JobModifyIndex != opts.ModifyIndex) {
		return nil, nil, errors.New("Unexpected response code: 500 (Enforcing job modify index: job exists with conflicting job modify index)")
	}
	f.registered = append(f.registered, job)
	f.registerOpts = append(f.registerOpts, opts)
	f.index++
	stored := roundTrip(job)
	stored.Version = new(uint64(0))
	if old != nil && !stopped(old) {
		stored.Version = new(*old.Version + 1)
	}
	stored.JobModifyIndex = new(f.index)
	stored.Stop = new(false)
	f.jobs[id] = stored
	eval := fmt.Sprintf("eval-%d", f.index)
	dep := fmt.Sprintf("dep-%d", f.index)
	f.evals[eval] = &api.Evaluation{ID: eval, Status: "complete", DeploymentID: dep}
	d := &api.Deployment{ID: dep, JobID: id, Status: "successful"}
	if f.failDeploy != "" {
		d.Status, d.StatusDescription = "failed", f.failDeploy
	}
	f.deploys[id] = append(f.deploys[id], d)
	return &api.JobRegisterResponse{EvalID: eval, JobModifyIndex: f.index}, &api.WriteMeta{}, nil
}

func (f fakeJobs) Plan(job *api.Job, _ bool, _ *api.WriteOptions) (*api.JobPlanResponse, *api.WriteMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.planned = append(f.planned, job)
	u := &api.DesiredUpdates{InPlaceUpdate: 2}
	if f.destructive {
		u = &api.DesiredUpdates{DestructiveUpdate: 2}
	}
	return &api.JobPlanResponse{Annotations: &api.PlanAnnotations{DesiredTGUpdates: map[string]*api.DesiredUpdates{"web": u}}}, &api.WriteMeta{}, nil
}

func (f fakeJobs) DeregisterOpts(id string, opts *api.DeregisterOptions, _ *api.WriteOptions) (string, *api.WriteMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deregistered = append(f.deregistered, fmt.Sprintf("%s purge=%v nodelay=%v", id, opts.Purge, opts.NoShutdownDelay))
	j := f.jobs[id]
	if j == nil {
		return "", nil, errNotFound
	}
	if opts.Purge {
		delete(f.jobs, id)
	} else {
		j.Stop = new(true)
	}
	return "eval", &api.WriteMeta{}, nil
}

func (f fakeJobs) Allocations(string, bool, *api.QueryOptions) ([]*api.AllocationListStub, *api.QueryMeta, error) {
	return nil, &api.QueryMeta{}, nil
}

func (f fakeJobs) Deployments(id string, _ bool, _ *api.QueryOptions) ([]*api.Deployment, *api.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.deploys[id], &api.QueryMeta{}, nil
}

func (f fakeAllocs) List(*api.QueryOptions) ([]*api.AllocationListStub, *api.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.allocs, &api.QueryMeta{}, nil
}

func (f fakeAllocs) Info(string, *api.QueryOptions) (*api.Allocation, *api.QueryMeta, error) {
	return nil, nil, errors.New("Unexpected response code: 404 (alloc not found)")
}

func (f fakeEvals) Info(id string, _ *api.QueryOptions) (*api.Evaluation, *api.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.evals[id]; e != nil {
		return e, &api.QueryMeta{}, nil
	}
	return nil, nil, errors.New("Unexpected response code: 404 (eval not found)")
}

// fakeStreams has no logs and cannot exec.
type fakeStreams struct{}

func (fakeStreams) Logs(*api.Allocation, bool, string, string, string, int64, <-chan struct{}, *api.QueryOptions) (<-chan *api.StreamFrame, <-chan error) {
	frames := make(chan *api.StreamFrame)
	close(frames)
	return frames, make(chan error, 1)
}

func (fakeStreams) Exec(context.Context, *api.Allocation, string, bool, []string, io.Reader, io.Writer, io.Writer, <-chan api.TerminalSize, *api.QueryOptions) (int, error) {
	return -1, errors.New("no exec in the fake")
}

func fakeRuntime(t *testing.T, f *fakeNomad) *Runtime {
	cfg, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	r := newRuntime(cfg, clients{jobs: fakeJobs{f}, allocs: fakeAllocs{f}, evals: fakeEvals{f}, stream: fakeStreams{}})
	t.Cleanup(func() { r.Close() })
	return r
}

func TestStartRegistersOnlyChanges(t *testing.T) {
	f := newFakeNomad()
	r := fakeRuntime(t, f)
	ctx := context.Background()
	rel := testRelease()
	for range 3 {
		if err := r.Start(ctx, rel); err != nil {
			t.Fatal(err)
		}
	}
	if len(f.registered) != 1 {
		t.Fatalf("Start of an unchanged release registered %d times", len(f.registered))
	}
	if d := f.registered[0].TaskGroups[0].Tasks[0].ShutdownDelay; d != defaultStopDrain {
		t.Errorf("shutdown delay %s, want the default StopDrain %s", d, defaultStopDrain)
	}
	rel.Processes[0].Count = 5
	if err := r.Start(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if len(f.registered) != 2 || *f.registered[1].TaskGroups[0].Count != 5 {
		t.Fatalf("scaling registered %d jobs", len(f.registered))
	}
	// A stopped job is registered again.
	f.jobs["berth-shop-v7"].Stop = new(true)
	if err := r.Start(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if len(f.registered) != 3 {
		t.Fatalf("Start of a stopped release registered %d jobs in all, want 3", len(f.registered))
	}
}

func TestRestartKeepsRestartOnStart(t *testing.T) {
	f := newFakeNomad()
	r := fakeRuntime(t, f)
	ctx := context.Background()
	rel := testRelease()
	if err := r.Restart(ctx, rel, "web"); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("Restart of a release that does not run: %v, want ErrNotFound", err)
	}
	if err := r.Start(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if err := r.Restart(ctx, rel, "web"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if len(f.registered) != 2 {
		t.Fatalf("%d registrations", len(f.registered))
	}
	restarted := f.registered[1]
	if group(t, restarted, "web").Meta[metaRestart] == "" || group(t, restarted, "worker").Meta[metaRestart] != "" {
		t.Errorf("Restart of web: web meta %v, worker meta %v", group(t, restarted, "web").Meta, group(t, restarted, "worker").Meta)
	}
	// The reconcile loop's Start must not undo (or redo) the restart.
	if err := r.Start(ctx, rel); err != nil {
		t.Fatal(err)
	}
	if len(f.registered) != 2 {
		t.Fatalf("Start after Restart registered again")
	}
	rel.Processes[0].Count = 0
	rel.Processes[1].Count = 0
	if err := r.Restart(ctx, rel, ""); !errors.Is(err, scheduler.ErrNotFound) {
		t.Fatalf("Restart without instances: %v, want ErrNotFound", err)
	}
}

func TestRestartDeploymentFails(t *testing.T) {
	f := newFakeNomad()
	r := fakeRuntime(t, f)
	ctx := context.Background()
	rel := testRelease()
	if err := r.Start(ctx, rel); err != nil {
		t.Fatal(err)
	}
	f.failDeploy = "Failed due to unhealthy allocations - rolling back to job version 0"
	err := r.Restart(ctx, rel, "")
	if err == nil || !strings.Contains(err.Error(), "rolling back") {
		t.Fatalf("Restart with a failing deployment: %v", err)
	}
}

func TestStopReleaseDrain(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name        string
		drain       time.Duration
		destructive bool
		planned     bool
		delay       time.Duration // of the registered update, if any
		dereg       string
	}{
		{"no drain", 0, false, false, 0, "berth-shop-v7 purge=false nodelay=true"},
		{"the job's drain", defaultStopDrain, false, false, 0, "berth-shop-v7 purge=false nodelay=false"},
		{"another drain", 4 * time.Second, false, true, 4 * time.Second, "berth-shop-v7 purge=false nodelay=false"},
		{"a drain Nomad would restart for", 4 * time.Second, true, true, 0, "berth-shop-v7 purge=false nodelay=false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeNomad()
			f.destructive = c.destructive
			r := fakeRuntime(t, f)
			if err := r.Start(ctx, testRelease()); err != nil {
				t.Fatal(err)
			}
			if err := r.StopRelease(ctx, "shop", 7, c.drain); err != nil {
				t.Fatalf("StopRelease: %v", err)
			}
			if got := len(f.planned) > 0; got != c.planned {
				t.Errorf("planned %v, want %v", got, c.planned)
			}
			updates := f.registered[1:]
			switch {
			case c.delay == 0 && len(updates) > 0:
				t.Errorf("the job was updated: %d registrations", len(updates))
			case c.delay != 0:
				if len(updates) != 1 {
					t.Fatalf("%d updates, want 1", len(updates))
				}
				if o := f.registerOpts[1]; o == nil || !o.EnforceIndex {
					t.Errorf("the update does not enforce the job's index: %+v", o)
				}
				for _, g := range updates[0].TaskGroups {
					if d := g.Tasks[0].ShutdownDelay; d != c.delay {
						t.Errorf("group %s shutdown delay %s, want %s", *g.Name, d, c.delay)
					}
					if *g.Count != *group(t, f.registered[0], *g.Name).Count {
						t.Errorf("the drain update changed the count of %s", *g.Name)
					}
				}
			}
			want := []string{c.dereg, "berth-shop-v7 purge=true nodelay=true"}
			if strings.Join(f.deregistered, "\n") != strings.Join(want, "\n") {
				t.Errorf("deregistrations %q, want %q", f.deregistered, want)
			}
		})
	}
	// Stopping what does not run is no error.
	f := newFakeNomad()
	if err := fakeRuntime(t, f).StopRelease(ctx, "shop", 9, time.Second); err != nil || len(f.deregistered) > 0 {
		t.Fatalf("StopRelease of nothing: %v, %q", err, f.deregistered)
	}
}

func TestDestroyOnlyTheAppsJobs(t *testing.T) {
	f := newFakeNomad()
	r := fakeRuntime(t, f)
	ctx := context.Background()
	for _, id := range []string{"berth-shop-v1", "berth-shop-v2", "berth-shop-run-0123456789ab", "berth-shop-v1-v3", "berth-shop-run-v1", "berth-shopping-v1"} {
		f.jobs[id] = &api.Job{ID: new(id)}
	}
	if err := r.Destroy(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	left := []string{}
	for id := range f.jobs {
		left = append(left, id)
	}
	for _, id := range []string{"berth-shop-v1-v3", "berth-shop-run-v1", "berth-shopping-v1"} {
		if f.jobs[id] == nil {
			t.Errorf("Destroy of shop purged %s (another app's job)", id)
		}
	}
	if len(f.jobs) != 3 {
		t.Errorf("jobs left: %v", left)
	}
	if err := r.Destroy(ctx, "shop"); err != nil {
		t.Fatalf("Destroy again: %v", err)
	}
}

func TestClosedRuntime(t *testing.T) {
	r := fakeRuntime(t, newFakeNomad())
	r.Close()
	r.Close()
	ctx := context.Background()
	if _, err := r.Instances(ctx, "shop"); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Errorf("Instances after Close: %v", err)
	}
	if err := r.Start(ctx, testRelease()); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Errorf("Start after Close: %v", err)
	}
}

func TestInvalidNames(t *testing.T) {
	r := fakeRuntime(t, newFakeNomad())
	ctx := context.Background()
	if _, err := r.Instances(ctx, "Bad App"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Instances of a bad name: %v", err)
	}
	if err := r.Logs(ctx, "shop", scheduler.LogOptions{Process: "web;x"}, func(scheduler.LogLine) {}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Logs of a bad process: %v", err)
	}
	if _, err := r.Run(ctx, testRelease(), scheduler.RunOptions{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Run without a command: %v", err)
	}
}
