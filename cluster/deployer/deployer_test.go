package deployer

import (
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/berthpaas/berth/scheduler"
)

func TestSpecOpensConfigAndAppliesFormation(t *testing.T) {
	kr, err := secrets.Generate()
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := kr.Seal([]byte("postgres://db"), []byte("web/DATABASE_URL"))
	app := &state.App{Name: "web", Formation: map[string]int{"web": 3, "worker": 1},
		Resources: map[string]state.Resources{"worker": {MemoryMB: 512}},
		Checks:    map[string]state.Check{"web": {Type: "http", Path: "/healthz"}}}
	rel := &state.Release{App: "web", Version: 7, Image: "r/web@sha256:1", Config: map[string][]byte{"DATABASE_URL": sealed},
		Processes: map[string]string{"web": "./web", "worker": "./worker", "clock": "./clock"}}
	spec, err := Spec(app, rel, kr)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Env["DATABASE_URL"] != "postgres://db" || spec.Version != 7 || spec.Image != rel.Image {
		t.Fatalf("spec: %+v", spec)
	}
	got := map[string]scheduler.Process{}
	for _, p := range spec.Processes {
		got[p.Name] = p
	}
	if got["web"].Count != 3 || got["worker"].Count != 1 || got["clock"].Count != 0 {
		t.Fatalf("counts: %+v", got)
	}
	if got["worker"].MemoryMB != 512 || got["worker"].Check.Type != scheduler.CheckNone {
		t.Fatalf("worker: %+v", got["worker"])
	}
	if c := got["web"].Check; c.Path != "/healthz" || c.Interval != time.Second || c.Timeout != 2*time.Second {
		t.Fatalf("web check with defaults filled in: %+v", c)
	}
	// A release without process types runs one web process with the image's command.
	spec, _ = Spec(&state.App{Name: "web"}, &state.Release{App: "web", Version: 1, Image: "x"}, kr)
	if len(spec.Processes) != 1 || spec.Processes[0].Name != "web" || spec.Processes[0].Count != 1 || spec.Processes[0].Command != "" {
		t.Fatalf("default process: %+v", spec.Processes)
	}
	// Sealed config without a keyring is an error, not an empty env.
	if _, err := Spec(app, rel, nil); err == nil {
		t.Fatal("Spec without a keyring opened sealed config")
	}
}

func TestHealthy(t *testing.T) {
	rel := scheduler.Release{Version: 2, Processes: []scheduler.Process{{Name: "web", Count: 2}, {Name: "worker", Count: 0}}}
	inst := func(idx int, v uint64, state string, healthy bool, msg string) scheduler.Instance {
		return scheduler.Instance{Process: "web", Index: idx, Release: v, State: state, Healthy: healthy, Message: msg}
	}
	cases := []struct {
		name         string
		insts        []scheduler.Instance
		ok, fatal    bool
		reasonHasAny string
	}{
		{"none yet", nil, false, false, "0 of 2"},
		{"one of two", []scheduler.Instance{inst(1, 2, "running", true, "")}, false, false, "1 of 2"},
		{"unhealthy", []scheduler.Instance{inst(1, 2, "running", true, ""), inst(2, 2, "running", false, "GET /: 500")}, false, false, "GET /: 500"},
		{"crashed", []scheduler.Instance{inst(1, 2, "failed", false, "exited with code 1")}, false, true, "exited with code 1"},
		{"old release ignored", []scheduler.Instance{inst(1, 1, "failed", false, ""), inst(1, 2, "running", true, ""), inst(2, 2, "running", true, "")}, true, false, ""},
		{"stopping ignored", []scheduler.Instance{inst(1, 2, "stopping", false, ""), inst(2, 2, "running", true, ""), inst(3, 2, "running", true, "")}, true, false, ""},
	}
	for _, c := range cases {
		ok, why, fatal := healthy(rel, c.insts)
		if ok != c.ok || fatal != c.fatal || !strings.Contains(why, c.reasonHasAny) {
			t.Errorf("%s: healthy = %v %q fatal %v", c.name, ok, why, fatal)
		}
	}
}

func TestOldestOpenDeployPerApp(t *testing.T) {
	deps := []*state.Deploy{
		{ID: "a-v3", App: "a", State: state.DeployPending, CreateIndex: 30},
		{ID: "a-v2", App: "a", State: state.DeployStarting, CreateIndex: 20},
		{ID: "a-v1", App: "a", State: state.DeployDone, CreateIndex: 10},
		{ID: "b-v1", App: "b", State: state.DeployFailed, CreateIndex: 5},
		{ID: "c-v9", App: "c", State: state.DeployDraining, CreateIndex: 90},
	}
	got := map[string]string{}
	for _, d := range oldestOpen(deps) {
		got[d.App] = d.ID
	}
	if len(got) != 2 || got["a"] != "a-v2" || got["c"] != "c-v9" {
		t.Fatalf("oldestOpen = %v", got)
	}
}
