package docker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/google/go-cmp/cmp"

	"github.com/berthpaas/berth/scheduler"
)

func TestContainerName(t *testing.T) {
	if got, want := containerName("shop", 12, "web", 3, "a1b2c3"), "berth-shop-v12-web.3-a1b2c3"; got != want {
		t.Errorf("containerName = %q, want %q", got, want)
	}
	if got, want := runName("shop", 12, "a1b2c3"), "berth-shop-v12-run-a1b2c3"; got != want {
		t.Errorf("runName = %q, want %q", got, want)
	}
	if s := randomSuffix(); len(s) != 6 || s == randomSuffix() {
		t.Errorf("randomSuffix %q: want 6 random hex digits", s)
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	m := meta{
		App: "shop", Release: 7, Process: "worker", Index: 2, KillTimeout: 30 * time.Second,
		Check: scheduler.Check{Type: scheduler.CheckTCP, Interval: 3 * time.Second, Timeout: time.Second},
	}
	l := m.labels("prod")
	if l[labelCluster] != "prod" || l[labelApp] != "shop" || l[labelRelease] != "7" || l[labelProcess] != "worker" || l[labelIndex] != "2" {
		t.Errorf("labels %v", l)
	}
	got, ok := parseLabels(l)
	if !ok {
		t.Fatalf("parseLabels(%v) failed", l)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	run := meta{App: "shop", Release: 7, KillTimeout: defaultKillTimeout, Run: true}
	if got, ok := parseLabels(run.labels("prod")); !ok || !got.Run || got.App != "shop" {
		t.Errorf("one-off labels: %+v %v", got, ok)
	}

	for name, l := range map[string]map[string]string{
		"not berth's":   {"maintainer": "x"},
		"bad app":       {labelApp: "Shop;rm", labelRelease: "1", labelProcess: "web", labelIndex: "1"},
		"bad release":   {labelApp: "shop", labelRelease: "v1", labelProcess: "web", labelIndex: "1"},
		"bad process":   {labelApp: "shop", labelRelease: "1", labelProcess: "../x", labelIndex: "1"},
		"index 0":       {labelApp: "shop", labelRelease: "1", labelProcess: "web", labelIndex: "0"},
		"missing index": {labelApp: "shop", labelRelease: "1", labelProcess: "web"},
	} {
		if _, ok := parseLabels(l); ok {
			t.Errorf("%s: parseLabels accepted %v", name, l)
		}
	}
}

func TestCheckDefaults(t *testing.T) {
	web := checkOf(scheduler.Process{Name: "web"})
	if web.Type != scheduler.CheckHTTP || web.Path != "/" || web.Interval != time.Second || web.Timeout != 2*time.Second {
		t.Errorf("web default check %+v", web)
	}
	if w := checkOf(scheduler.Process{Name: "worker"}); w.Type != scheduler.CheckNone || w.Interval <= 0 {
		t.Errorf("worker default check %+v", w)
	}
	if c := checkOf(scheduler.Process{Name: "web", Check: scheduler.Check{Type: scheduler.CheckHTTP, Path: "/up"}}); c.Path != "/up" || c.Interval != defaultInterval {
		t.Errorf("http check %+v", c)
	}
}

func TestValidRelease(t *testing.T) {
	ok := scheduler.Release{App: "shop", Version: 1, Image: "r/shop@sha256:x", Processes: []scheduler.Process{{Name: "web", Count: 1}}}
	if err := validRelease(ok); err != nil {
		t.Fatalf("validRelease: %v", err)
	}
	for name, mod := range map[string]func(*scheduler.Release){
		"app with a shell char": func(r *scheduler.Release) { r.App = "shop;rm" },
		"upper-case app":        func(r *scheduler.Release) { r.App = "Shop" },
		"no image":              func(r *scheduler.Release) { r.Image = "" },
		"bad process":           func(r *scheduler.Release) { r.Processes[0].Name = "web/1" },
		"negative count":        func(r *scheduler.Release) { r.Processes[0].Count = -1 },
		"unknown check":         func(r *scheduler.Release) { r.Processes[0].Check.Type = "grpc" },
		"process twice": func(r *scheduler.Release) {
			r.Processes = append(r.Processes, scheduler.Process{Name: "web"})
		},
	} {
		rel := ok
		rel.Processes = append([]scheduler.Process(nil), ok.Processes...)
		mod(&rel)
		if err := validRelease(rel); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: validRelease = %v, want ErrInvalid", name, err)
		}
	}
}

func TestInstanceSpec(t *testing.T) {
	cfg := Config{Network: "berth", HostIP: "127.0.0.1", Cluster: "c1"}
	rel := scheduler.Release{
		App: "shop", Version: 4, Image: "reg/shop@sha256:abc",
		Env:         map[string]string{"B": "2", "A": "1", "PORT": "80"},
		KillTimeout: 1500 * time.Millisecond,
	}

	sp := cfg.instanceSpec(rel, scheduler.Process{Name: "web", Count: 2}, 2, "abcdef")
	if sp.Name != "berth-shop-v4-web.2-abcdef" {
		t.Errorf("name %q", sp.Name)
	}
	if diff := cmp.Diff([]string{"A=1", "B=2", "PORT=5000"}, sp.Config.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if sp.Config.Entrypoint != nil || sp.Config.Cmd != nil {
		t.Errorf("web without a command must run the image's entrypoint: %v %v", sp.Config.Entrypoint, sp.Config.Cmd)
	}
	if *sp.Config.StopTimeout != 2 {
		t.Errorf("stop timeout %d, want the kill timeout rounded up (2)", *sp.Config.StopTimeout)
	}
	if b := sp.Host.PortBindings[containerPort]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "" {
		t.Errorf("port bindings %v", sp.Host.PortBindings)
	}
	if _, ok := sp.Config.ExposedPorts[containerPort]; !ok {
		t.Errorf("exposed ports %v", sp.Config.ExposedPorts)
	}
	if sp.Host.Memory != 256<<20 || sp.Host.CPUShares != 100 {
		t.Errorf("defaults: memory %d, shares %d", sp.Host.Memory, sp.Host.CPUShares)
	}
	if sp.Host.RestartPolicy.Name != container.RestartPolicyUnlessStopped || string(sp.Host.NetworkMode) != "berth" || sp.Host.Init == nil || !*sp.Host.Init {
		t.Errorf("host config %+v", sp.Host)
	}
	if m, ok := parseLabels(sp.Config.Labels); !ok || m.Index != 2 || m.Process != "web" || m.Check.Type != scheduler.CheckHTTP || m.KillTimeout != 1500*time.Millisecond {
		t.Errorf("labels %v parse to %+v", sp.Config.Labels, m)
	}

	sp = cfg.instanceSpec(rel, scheduler.Process{Name: "worker", Command: "bin/work --fast", MemoryMB: 512, CPU: 500}, 1, "abcdef")
	if diff := cmp.Diff([]string{"/bin/sh", "-c"}, []string(sp.Config.Entrypoint)); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bin/work --fast"}, []string(sp.Config.Cmd)); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	if len(sp.Host.PortBindings) != 0 || len(sp.Config.ExposedPorts) != 0 {
		t.Errorf("a worker without a network check publishes no port: %v", sp.Host.PortBindings)
	}
	if sp.Host.Memory != 512<<20 || sp.Host.CPUShares != 500 {
		t.Errorf("limits: memory %d, shares %d", sp.Host.Memory, sp.Host.CPUShares)
	}

	sp = cfg.instanceSpec(rel, scheduler.Process{Name: "queue", Check: scheduler.Check{Type: scheduler.CheckTCP}}, 1, "abcdef")
	if len(sp.Host.PortBindings) != 1 {
		t.Errorf("a process with a TCP check publishes its port: %v", sp.Host.PortBindings)
	}
}

func TestPlanFormation(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rel := scheduler.Release{Processes: []scheduler.Process{{Name: "web", Count: 2}, {Name: "worker", Count: 1}}}
	for _, tc := range []struct {
		name string
		have []have
		want plan
	}{
		{
			name: "nothing yet",
			want: plan{Create: []slot{{"web", 1}, {"web", 2}, {"worker", 1}}},
		},
		{
			name: "converged",
			have: []have{
				{ID: "a", Process: "web", Index: 1, Live: true},
				{ID: "b", Process: "web", Index: 2, Live: true},
				{ID: "c", Process: "worker", Index: 1, Live: true},
			},
			want: plan{Keep: []string{"a", "b", "c"}},
		},
		{
			name: "scale down stops the highest indexes and removed processes",
			have: []have{
				{ID: "a", Process: "web", Index: 1, Live: true},
				{ID: "b", Process: "web", Index: 2, Live: true},
				{ID: "c", Process: "worker", Index: 1, Live: true},
				{ID: "d", Process: "web", Index: 3, Live: true},
				{ID: "e", Process: "clock", Index: 1, Live: true},
			},
			want: plan{Keep: []string{"a", "b", "c"}, Stop: []string{"d", "e"}},
		},
		{
			name: "dead instances are removed and replaced",
			have: []have{
				{ID: "a", Process: "web", Index: 1, Live: false},
				{ID: "b", Process: "web", Index: 2, Live: true},
				{ID: "c", Process: "worker", Index: 1, Live: true},
				{ID: "d", Process: "web", Index: 3, Live: false},
			},
			want: plan{Keep: []string{"b", "c"}, Remove: []string{"a", "d"}, Create: []slot{{"web", 1}}},
		},
		{
			name: "stopping instances fill no slot and are left alone",
			have: []have{
				{ID: "a", Process: "web", Index: 1, Live: true, Stopping: true},
				{ID: "b", Process: "web", Index: 2, Live: true},
				{ID: "c", Process: "worker", Index: 1, Live: true},
			},
			want: plan{Keep: []string{"b", "c"}, Create: []slot{{"web", 1}}},
		},
		{
			name: "of two in one slot the healthy, then the older, stays",
			have: []have{
				{ID: "a", Process: "web", Index: 1, Live: true, Created: t0},
				{ID: "b", Process: "web", Index: 1, Live: true, Healthy: true, Created: t0.Add(time.Second)},
				{ID: "c", Process: "web", Index: 2, Live: true, Created: t0.Add(time.Second)},
				{ID: "d", Process: "web", Index: 2, Live: true, Created: t0},
				{ID: "e", Process: "worker", Index: 1, Live: true},
			},
			want: plan{Keep: []string{"b", "d", "e"}, Stop: []string{"a", "c"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, planFormation(rel, tc.have)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInstanceStateAndMessage(t *testing.T) {
	for _, tc := range []struct {
		state    container.ContainerState
		stopping bool
		code     int
		oom      bool
		err      string
		want     string
		msg      string
	}{
		{state: "running", want: scheduler.StateRunning},
		{state: "running", stopping: true, want: scheduler.StateStopping},
		{state: "removing", want: scheduler.StateStopping},
		{state: "created", want: scheduler.StatePending},
		{state: "created", err: "exec: \"/x\": not found", want: scheduler.StateFailed, msg: "exec: \"/x\": not found"},
		{state: "exited", code: 0, want: scheduler.StateExited, msg: "exited with code 0"},
		{state: "exited", code: 1, want: scheduler.StateFailed, msg: "exited with code 1"},
		{state: "exited", code: 137, want: scheduler.StateFailed, msg: "exited with code 137 (killed)"},
		{state: "exited", code: 137, oom: true, want: scheduler.StateFailed, msg: "exited with code 137 (out of memory)"},
		{state: "restarting", code: 1, want: scheduler.StateFailed, msg: "exited with code 1; restarting"},
		{state: "dead", code: 2, want: scheduler.StateFailed, msg: "exited with code 2; dead"},
	} {
		if got := instanceState(tc.state, tc.stopping, tc.code, tc.err); got != tc.want {
			t.Errorf("instanceState(%s, stopping=%v, %d, %q) = %s, want %s", tc.state, tc.stopping, tc.code, tc.err, got, tc.want)
		}
		if got := exitMessage(tc.state, tc.code, tc.oom, tc.err); got != tc.msg {
			t.Errorf("exitMessage(%s, %d, %v, %q) = %q, want %q", tc.state, tc.code, tc.oom, tc.err, got, tc.msg)
		}
	}
	for status, want := range map[string]int{"Exited (1) 2 seconds ago": 1, "Restarting (137) Less than a second ago": 137, "Exited (-1) 1 hour ago": -1} {
		if got, ok := exitCodeOf(status); !ok || got != want {
			t.Errorf("exitCodeOf(%q) = %d, %v", status, got, ok)
		}
	}
	if _, ok := exitCodeOf("Up 3 seconds"); ok {
		t.Error("exitCodeOf a running status")
	}
}

func TestHealthRecord(t *testing.T) {
	var h health
	fail := errors.New("GET /healthz: 500")
	h = h.record(fail)
	if h.healthy || h.message != "GET /healthz: 500" {
		t.Fatalf("after a failure: %+v", h)
	}
	h = h.record(nil)
	if !h.healthy || h.message != "" || !h.passed {
		t.Fatalf("one pass makes it healthy: %+v", h)
	}
	h = h.record(fail)
	h = h.record(fail)
	if !h.healthy || h.message == "" {
		t.Fatalf("two failures keep it healthy, with the reason: %+v", h)
	}
	h = h.record(fail)
	if h.healthy {
		t.Fatalf("three consecutive failures make it unhealthy: %+v", h)
	}
	h = h.record(nil)
	if !h.healthy || h.fails != 0 {
		t.Fatalf("a pass makes it healthy again: %+v", h)
	}
}

func TestProbes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	trans := &http.Transport{DisableKeepAlives: true}
	defer trans.CloseIdleConnections()
	hc := &http.Client{Transport: trans, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx := context.Background()

	if err := probeHTTP(ctx, hc, addr, "/ok"); err != nil {
		t.Errorf("200: %v", err)
	}
	if err := probeHTTP(ctx, hc, addr, "/moved"); err != nil {
		t.Errorf("302 passes (not followed): %v", err)
	}
	if err := probeHTTP(ctx, hc, addr, "/healthz"); err == nil || err.Error() != "GET /healthz: 500" {
		t.Errorf("500: %v", err)
	}
	if err := probeTCP(ctx, addr); err != nil {
		t.Errorf("TCP to a listening server: %v", err)
	}

	// Nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if err := probeHTTP(ctx, hc, closed, "/"); err == nil || err.Error() != "GET /: connection refused" {
		t.Errorf("refused: %v", err)
	}
	if err := probeTCP(ctx, closed); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("TCP refused: %v", err)
	}

	// What Docker's userland proxy does when nothing listens in the
	// container: accept, then close.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := probeTCP(ctx, ln.Addr().String()); err == nil {
		t.Error("TCP check passed against a connection closed at once")
	}
	if err := probeHTTP(ctx, hc, ln.Addr().String(), "/"); err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Errorf("HTTP against a connection closed at once: %v", err)
	}
	ln.Close()
	<-done
}

func TestParseLogLine(t *testing.T) {
	l := parseLogLine("2026-01-02T03:04:05.123456789Z started on :5000\r")
	if l.Text != "started on :5000" || !l.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)) {
		t.Errorf("parsed %+v", l)
	}
	if l := parseLogLine("no timestamp here"); l.Text != "no timestamp here" || l.Time.IsZero() {
		t.Errorf("parsed %+v", l)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a Docker client succeeded")
	}
	if _, err := New(Config{Docker: nopDocker{}, HostIP: "localhost"}); err == nil {
		t.Error("New with a host name as HostIP succeeded")
	}
}

// nopDocker is a Docker that has nothing; enough for New's checks.
type nopDocker struct{ Docker }
