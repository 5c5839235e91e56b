package nomad

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// uncheckedHealthyAfter is how long an instance without a check must run
// to be Healthy (as in the docker runtime).
const uncheckedHealthyAfter = time.Second

// Instances implements scheduler.Runtime. It asks Nomad for the
// allocations of the app's release jobs (one call) and the jobs' check
// types, and Consul for the app's checks (one call), so it sees what any
// other Runtime started.
func (r *Runtime) Instances(ctx context.Context, app string) ([]scheduler.Instance, error) {
	if err := r.usable(); err != nil {
		return nil, err
	}
	if err := validApp(app); err != nil {
		return nil, err
	}
	stubs, err := r.allocations(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("instances of %s: %w", app, err)
	}
	checks := map[string]map[string]string{} // job ID → group → check type
	ended := map[string]bool{}               // job ID → purged or stopped
	needHealth := false
	for _, a := range stubs {
		if _, seen := checks[a.JobID]; seen || !visible(a) {
			continue
		}
		job, err := r.job(ctx, a.JobID)
		if err != nil {
			return nil, fmt.Errorf("instances of %s: %w", app, err)
		}
		ended[a.JobID] = job == nil || stopped(job)
		checks[a.JobID] = groupChecks(job)
		for _, c := range checks[a.JobID] {
			needHealth = needHealth || c != scheduler.CheckNone
		}
	}
	var health map[string]allocHealth
	if needHealth {
		if health, err = r.health(ctx, app); err != nil {
			return nil, fmt.Errorf("instances of %s: %w", app, err)
		}
	}
	now := time.Now()
	out := make([]scheduler.Instance, 0, len(stubs))
	for _, a := range stubs {
		version, _, ok := parseJobID(app, a.JobID)
		if !ok || !visible(a) || (terminal(a) && ended[a.JobID]) {
			// A failed allocation waiting for its reschedule keeps desired
			// status "run" even after its job is stopped or purged; it is
			// no instance any more.
			continue
		}
		check, known := checks[a.JobID][a.TaskGroup]
		out = append(out, instanceOf(app, version, a, check, known, health[a.ID], now))
	}
	slices.SortFunc(out, func(a, b scheduler.Instance) int {
		return cmp.Or(cmp.Compare(a.Release, b.Release), cmp.Compare(a.Process, b.Process),
			cmp.Compare(a.Index, b.Index), a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// allocations lists the allocations of app's release jobs, with their
// ports.
func (r *Runtime) allocations(ctx context.Context, app string) ([]*api.AllocationListStub, error) {
	q := &api.QueryOptions{Filter: releaseJobsFilter(app), Params: map[string]string{"resources": "true"}}
	stubs, _, err := r.c.allocs.List(q.WithContext(ctx))
	if err != nil {
		return nil, r.nomadErr("list allocations", err)
	}
	return stubs, nil
}

// groupChecks reads the check type of each group of a job (nil job: none
// known, the job was purged).
func groupChecks(job *api.Job) map[string]string {
	out := map[string]string{}
	if job == nil {
		return out
	}
	for _, g := range job.TaskGroups {
		if g.Name != nil {
			out[*g.Name] = g.Meta[metaCheck]
		}
	}
	return out
}

// allocHealth is what Consul says about one allocation's service checks.
type allocHealth struct {
	checks  int
	passing int
	output  string // of the first check that is not passing
}

// health reads the checks of all of app's service instances, and the
// nodes' own checks, and groups them by allocation.
func (r *Runtime) health(ctx context.Context, app string) (map[string]allocHealth, error) {
	// Node checks (ServiceID "": serfHealth, maintenance) count for every
	// service on the node, as in Consul's ?passing answers routers use: a
	// node whose Consul agent stopped answering (a dead machine) has its
	// instances out at once, before Nomad's servers declare the node down.
	q := &consul.QueryOptions{Filter: fmt.Sprintf(`%q in ServiceTags or ServiceID == ""`, appTag(app))}
	hcs, _, err := r.c.health.State(consul.HealthAny, q.WithContext(ctx))
	if err != nil {
		return nil, r.consulErr("read the health of "+app+"'s services", err)
	}
	return healthByAlloc(hcs), nil
}

// nomadServicePrefix starts the ID of every Consul service Nomad
// registers; the allocation's ID follows.
const nomadServicePrefix = "_nomad-task-"

// allocOfService returns the allocation ID in a Nomad service ID
// ("_nomad-task-<alloc>-group-<group>-<service>-<port>").
func allocOfService(serviceID string) (string, bool) {
	rest, ok := strings.CutPrefix(serviceID, nomadServicePrefix)
	if !ok || len(rest) < 36 {
		return "", false
	}
	return rest[:36], true
}

func healthByAlloc(hcs consul.HealthChecks) map[string]allocHealth {
	nodeDown := map[string]string{} // node → why its own check fails
	for _, c := range hcs {
		if c.ServiceID == "" && c.Status != consul.HealthPassing && nodeDown[c.Node] == "" {
			nodeDown[c.Node] = "node " + c.Node + ": " + checkOutput(c)
		}
	}
	out := map[string]allocHealth{}
	for _, c := range hcs {
		id, ok := allocOfService(c.ServiceID)
		if !ok {
			continue
		}
		h := out[id]
		h.checks++
		switch {
		case nodeDown[c.Node] != "":
			h.output = nodeDown[c.Node]
		case c.Status == consul.HealthPassing:
			h.passing++
		case h.output == "":
			h.output = checkOutput(c)
		}
		out[id] = h
	}
	return out
}

// checkOutput is a failing check's reason on one line.
func checkOutput(c *consul.HealthCheck) string {
	out := strings.Join(strings.Fields(c.Output), " ")
	switch {
	case out == "" && c.Status == initialStatus:
		return "waiting for the first check"
	case out == "":
		return "check " + c.Status
	}
	const max = 300
	if len(out) > max {
		out = out[:max] + "…"
	}
	return out
}

// visible says whether an allocation is an instance to show: everything
// but allocations that finished and are not wanted anymore (stopped,
// replaced by a rescheduled one, lost).
func visible(a *api.AllocationListStub) bool {
	if !terminal(a) {
		return true
	}
	return a.DesiredStatus == api.AllocDesiredStatusRun && a.NextAllocation == "" &&
		a.ClientStatus != api.AllocClientStatusLost
}

// instanceOf maps an allocation of release version of app to an Instance.
// check is its group's check type (known false: the job is gone); h is
// what Consul says about its checks. It is pure.
func instanceOf(app string, version uint64, a *api.AllocationListStub, check string, known bool, h allocHealth, now time.Time) scheduler.Instance {
	in := scheduler.Instance{
		ID:      a.ID,
		App:     app,
		Process: a.TaskGroup,
		Index:   allocIndex(a.Name),
		Release: version,
		Node:    a.NodeName,
		Addr:    allocAddr(a),
	}
	ts := a.TaskStates[a.TaskGroup]
	if ts != nil && !ts.StartedAt.IsZero() {
		in.StartedAt = ts.StartedAt
	} else if a.CreateTime > 0 {
		in.StartedAt = time.Unix(0, a.CreateTime)
	}
	in.State, in.Message = allocState(a, ts)
	if !known && in.State != scheduler.StateStopping && !terminal(a) {
		// The job was purged (Destroy): its allocations are going.
		in.State = scheduler.StateStopping
	}
	if in.State != scheduler.StateRunning {
		return in
	}
	switch check {
	case scheduler.CheckNone:
		in.Healthy = ts != nil && ts.State == "running" && now.Sub(ts.StartedAt) >= uncheckedHealthyAfter
	default:
		in.Healthy = h.checks > 0 && h.passing == h.checks
		if !in.Healthy {
			in.Message = h.output
		}
	}
	return in
}

// allocAddr is host:port of an allocation's published port.
func allocAddr(a *api.AllocationListStub) string {
	if a.AllocatedResources == nil {
		return ""
	}
	for _, p := range a.AllocatedResources.Shared.Ports {
		if p.Label == portLabel && p.Value > 0 && p.HostIP != "" {
			return net.JoinHostPort(p.HostIP, strconv.Itoa(p.Value))
		}
	}
	return ""
}

// allocState is an allocation's state as berth reports it, with the
// reason when it is not running.
func allocState(a *api.AllocationListStub, ts *api.TaskState) (state, message string) {
	if a.DesiredStatus != api.AllocDesiredStatusRun {
		return scheduler.StateStopping, ""
	}
	switch a.ClientStatus {
	case api.AllocClientStatusRunning:
		if ts != nil && ts.State != "running" {
			// Dead, waiting to be restarted.
			return scheduler.StateFailed, taskMessage(ts)
		}
		return scheduler.StateRunning, ""
	case api.AllocClientStatusPending:
		if ts != nil && (ts.Restarts > 0 || ts.Failed) {
			// A crash loop between restarts.
			return scheduler.StateFailed, taskMessage(ts)
		}
		return scheduler.StatePending, taskMessage(ts)
	case api.AllocClientStatusComplete:
		return scheduler.StateExited, taskMessage(ts)
	case api.AllocClientStatusFailed:
		msg := taskMessage(ts)
		if msg == "" {
			msg = a.ClientDescription
		}
		return scheduler.StateFailed, msg
	case api.AllocClientStatusUnknown:
		return scheduler.StatePending, "node disconnected"
	default:
		return scheduler.StateFailed, a.ClientStatus
	}
}

// Task event types that say why a task is not running.
var causes = map[string]bool{
	api.TaskDriverFailure:          true,
	api.TaskTerminated:             true,
	api.TaskSetupFailure:           true,
	api.TaskFailedValidation:       true,
	api.TaskArtifactDownloadFailed: true,
	api.TaskSiblingFailed:          true,
	api.TaskKilled:                 true,
	"Task hook failed":             true, // Nomad's structs.TaskHookFailed
	"Disk Resources Exceeded":      true, // Nomad's structs.TaskDiskExceeded
}

// taskMessage says what happened to a task last: the cause ("Terminated:
// Exit Code: 1", "Driver Failure: ...") and, when it is followed by one,
// the restart decision ("Not Restarting: Exceeded allowed attempts ...").
// For a task still starting it is its last event ("Driver: Downloading
// image").
func taskMessage(ts *api.TaskState) string {
	if ts == nil || len(ts.Events) == 0 {
		return ""
	}
	var cause, after string
	for i := len(ts.Events) - 1; i >= 0 && cause == ""; i-- {
		e := ts.Events[i]
		switch {
		case causes[e.Type]:
			cause = eventText(e)
		case after == "" && (e.Type == api.TaskRestarting || e.Type == api.TaskNotRestarting):
			after = eventText(e)
		}
	}
	switch {
	case cause != "" && after != "":
		return cause + "; " + after
	case cause != "":
		return cause
	case after != "":
		return after
	}
	return eventText(ts.Events[len(ts.Events)-1])
}

func eventText(e *api.TaskEvent) string {
	msg := e.DisplayMessage
	if msg == "" {
		msg = e.Message
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if msg == "" {
		return e.Type
	}
	return e.Type + ": " + msg
}
