package nomad

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	consul "github.com/hashicorp/consul/api"
	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

const allocA = "0a1b2c3d-0000-1111-2222-333344445555"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func stub(client, desired string, ts *api.TaskState) *api.AllocationListStub {
	return &api.AllocationListStub{
		ID:            allocA,
		Name:          "berth-shop-v7.web[1]",
		NodeName:      "node-1",
		JobID:         "berth-shop-v7",
		TaskGroup:     "web",
		ClientStatus:  client,
		DesiredStatus: desired,
		TaskStates:    map[string]*api.TaskState{"web": ts},
		CreateTime:    t0.Add(-time.Minute).UnixNano(),
		AllocatedResources: &api.AllocatedResources{Shared: api.AllocatedSharedResources{
			Ports: []api.PortMapping{{Label: "http", Value: 23456, To: 5000, HostIP: "10.0.0.5"}},
		}},
	}
}

func running(started time.Time) *api.TaskState {
	return &api.TaskState{State: "running", StartedAt: started, Events: []*api.TaskEvent{
		{Type: api.TaskReceived}, {Type: api.TaskStarted, DisplayMessage: "Task started by client"},
	}}
}

func event(typ, msg string) *api.TaskEvent { return &api.TaskEvent{Type: typ, DisplayMessage: msg} }

func TestInstanceOf(t *testing.T) {
	now := t0.Add(10 * time.Second)
	passing := allocHealth{checks: 1, passing: 1}
	failing := allocHealth{checks: 1, output: "HTTP GET http://10.0.0.5:23456/healthz: 500 Internal Server Error"}
	crashed := &api.TaskState{State: "pending", Restarts: 1, StartedAt: t0, Events: []*api.TaskEvent{
		event(api.TaskStarted, "Task started by client"),
		event(api.TaskTerminated, "Exit Code: 1, Exit Message: \"Docker container exited with non-zero exit code: 1\""),
		event(api.TaskRestarting, "Task restarting in 1.1s"),
	}}
	driverFailed := &api.TaskState{State: "dead", Failed: true, Events: []*api.TaskEvent{
		event(api.TaskDriverFailure, "Failed to pull `x`: image not found"),
		event(api.TaskNotRestarting, "Error was unrecoverable"),
	}}
	cases := []struct {
		name    string
		a       *api.AllocationListStub
		check   string
		known   bool
		h       allocHealth
		state   string
		healthy bool
		message string
	}{
		{"running, checks passing", stub("running", "run", running(t0)), "http", true, passing, scheduler.StateRunning, true, ""},
		{"running, check failing", stub("running", "run", running(t0)), "http", true, failing, scheduler.StateRunning, false, failing.output},
		{"running, not in Consul yet", stub("running", "run", running(t0)), "http", true, allocHealth{}, scheduler.StateRunning, false, ""},
		{"running, one of two checks passing", stub("running", "run", running(t0)), "tcp", true, allocHealth{checks: 2, passing: 1, output: "dial: refused"}, scheduler.StateRunning, false, "dial: refused"},
		{"no check, running 10s", stub("running", "run", running(t0)), "none", true, allocHealth{}, scheduler.StateRunning, true, ""},
		{"no check, running 0.5s", stub("running", "run", running(now.Add(-500*time.Millisecond))), "none", true, allocHealth{}, scheduler.StateRunning, false, ""},
		{"stopping, still passing", stub("running", "stop", running(t0)), "http", true, passing, scheduler.StateStopping, false, ""},
		{"job purged", stub("running", "run", running(t0)), "", false, passing, scheduler.StateStopping, false, ""},
		{"crash loop", stub("pending", "run", crashed), "http", true, allocHealth{}, scheduler.StateFailed, false,
			"Terminated: Exit Code: 1, Exit Message: \"Docker container exited with non-zero exit code: 1\"; Restarting: Task restarting in 1.1s"},
		{"restarting while the alloc still runs", stub("running", "run", crashed), "http", true, passing, scheduler.StateFailed, false,
			"Terminated: Exit Code: 1, Exit Message: \"Docker container exited with non-zero exit code: 1\"; Restarting: Task restarting in 1.1s"},
		{"driver failure", stub("failed", "run", driverFailed), "http", true, allocHealth{}, scheduler.StateFailed, false,
			"Driver Failure: Failed to pull `x`: image not found; Not Restarting: Error was unrecoverable"},
		{"pulling", stub("pending", "run", &api.TaskState{State: "pending", Events: []*api.TaskEvent{event(api.TaskDriverMessage, "Downloading image")}}),
			"http", true, allocHealth{}, scheduler.StatePending, false, "Driver: Downloading image"},
		{"exited", stub("complete", "run", &api.TaskState{State: "dead", StartedAt: t0, Events: []*api.TaskEvent{event(api.TaskTerminated, "Exit Code: 0")}}),
			"none", true, allocHealth{}, scheduler.StateExited, false, "Terminated: Exit Code: 0"},
		{"node disconnected", stub("unknown", "run", running(t0)), "http", true, passing, scheduler.StatePending, false, "node disconnected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := instanceOf("shop", 7, c.a, c.check, c.known, c.h, now)
			if in.State != c.state || in.Healthy != c.healthy || in.Message != c.message {
				t.Errorf("state %s healthy %v message %q; want %s %v %q", in.State, in.Healthy, in.Message, c.state, c.healthy, c.message)
			}
			if in.ID != allocA || in.App != "shop" || in.Process != "web" || in.Index != 2 || in.Release != 7 ||
				in.Node != "node-1" || in.Addr != "10.0.0.5:23456" || in.Name() != "web.2" {
				t.Errorf("instance %+v", in)
			}
			if in.StartedAt.IsZero() {
				t.Error("no StartedAt")
			}
		})
	}
	// A task that never started is as old as its allocation.
	in := instanceOf("shop", 7, stub("pending", "run", nil), "http", true, allocHealth{}, now)
	if !in.StartedAt.Equal(t0.Add(-time.Minute)) || in.State != scheduler.StatePending {
		t.Errorf("pending without a task state: %+v", in)
	}
}

func TestVisible(t *testing.T) {
	cases := []struct {
		a    *api.AllocationListStub
		want bool
	}{
		{stub("running", "run", nil), true},
		{stub("pending", "run", nil), true},
		{stub("running", "stop", nil), true},   // stopping
		{stub("complete", "stop", nil), false}, // stopped
		{stub("failed", "stop", nil), false},
		{stub("failed", "run", nil), true}, // failed, waiting to be rescheduled
		{stub("lost", "run", nil), false},
		{func() *api.AllocationListStub { a := stub("failed", "run", nil); a.NextAllocation = "next"; return a }(), false},
	}
	for _, c := range cases {
		if got := visible(c.a); got != c.want {
			t.Errorf("visible(%s/%s next=%q) = %v", c.a.ClientStatus, c.a.DesiredStatus, c.a.NextAllocation, got)
		}
	}
}

func TestHealthByAlloc(t *testing.T) {
	svc := "_nomad-task-" + allocA + "-group-web-berth-shop-web-http"
	other := "_nomad-task-99999999-0000-1111-2222-333344445555-group-web-berth-shop-web-http"
	got := healthByAlloc(consul.HealthChecks{
		{ServiceID: svc, Status: consul.HealthPassing, Output: "ok"},
		{ServiceID: svc, Status: consul.HealthCritical, Output: "HTTP GET http://x/healthz:\n 500 Internal\tServer Error"},
		{ServiceID: other, Status: "warning"},
		{ServiceID: "_nomad-server-abc", Status: consul.HealthPassing},
		{ServiceID: "", Status: consul.HealthPassing}, // a node check
	})
	want := map[string]allocHealth{
		allocA:                                 {checks: 2, passing: 1, output: "HTTP GET http://x/healthz: 500 Internal Server Error"},
		"99999999-0000-1111-2222-333344445555": {checks: 1, output: "waiting for the first check"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(allocHealth{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestHealthByAllocNodeDown: a failing node check (the node's Consul agent
// is gone) makes the node's instances unhealthy, whatever their own
// checks said last.
func TestHealthByAllocNodeDown(t *testing.T) {
	svc := "_nomad-task-" + allocA + "-group-web-berth-shop-web-http"
	other := "_nomad-task-99999999-0000-1111-2222-333344445555-group-web-berth-shop-web-http"
	got := healthByAlloc(consul.HealthChecks{
		{Node: "n2", ServiceID: svc, Status: consul.HealthPassing, Output: "ok"},
		{Node: "n2", CheckID: "serfHealth", Status: consul.HealthCritical, Output: "Agent not live or unreachable"},
		{Node: "n1", ServiceID: other, Status: consul.HealthPassing},
		{Node: "n1", CheckID: "serfHealth", Status: consul.HealthPassing, Output: "Agent alive and reachable"},
	})
	want := map[string]allocHealth{
		allocA:                                 {checks: 1, output: "node n2: Agent not live or unreachable"},
		"99999999-0000-1111-2222-333344445555": {checks: 1, passing: 1},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(allocHealth{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestExitCode(t *testing.T) {
	ts := &api.TaskState{Events: []*api.TaskEvent{
		{Type: api.TaskStarted},
		{Type: api.TaskTerminated, Details: map[string]string{"exit_code": "3"}, ExitCode: 3},
		{Type: api.TaskNotRestarting},
	}}
	if code, ok := exitCode(ts); !ok || code != 3 {
		t.Errorf("exitCode = %d, %v", code, ok)
	}
	if _, ok := exitCode(&api.TaskState{Events: []*api.TaskEvent{{Type: api.TaskDriverFailure}}}); ok {
		t.Error("an exit code for a task that never ran")
	}
	if code, ok := exitCode(&api.TaskState{Events: []*api.TaskEvent{{Type: api.TaskTerminated, ExitCode: 137}}}); !ok || code != 137 {
		t.Errorf("exit code without details: %d %v", code, ok)
	}
}

func TestLines(t *testing.T) {
	if got := splitLines([]byte("a\r\nb\n\nc")); !slices.Equal(got, []string{"a", "b", "", "c"}) {
		t.Errorf("splitLines %q", got)
	}
	if got := splitLines(nil); got != nil {
		t.Errorf("splitLines(nil) %q", got)
	}
	var got []string
	w := &lineWriter{emit: func(s string) { got = append(got, s) }}
	w.write([]byte("tick 1\ntick"))
	w.write([]byte(" 2\r\n"))
	w.write([]byte("partial"))
	w.flush()
	w.write(bytes.Repeat([]byte("x"), maxLine+10))
	if want := []string{"tick 1", "tick 2", "partial", strings.Repeat("x", maxLine+10)}; !slices.Equal(got, want) {
		t.Errorf("lines %q", got)
	}
}
