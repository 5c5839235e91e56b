package runtimetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
	"github.com/berthpaas/berth/scheduler"
)

// Bounds of the suite. They are generous: engines in CI are slow (one
// container create can take a second), and a wait ends as soon as its fact
// holds.
const (
	startTimeout = 90 * time.Second // for a release to run and be healthy
	goneTimeout  = 60 * time.Second // for stopped instances to disappear
	callTimeout  = 2 * time.Minute  // of one runtime call
	pollEvery    = 250 * time.Millisecond
)

// env is one case's world: its own app on a fresh runtime.
type env struct {
	t     *testing.T
	h     Harness
	rt    scheduler.Runtime
	image string
	app   string
}

func newEnv(t *testing.T, h Harness, image, app string) *env {
	rt := h.New(t)
	e := &env{t: t, h: h, rt: rt, image: image, app: app}
	// Registered after New's cleanups, so it runs before them.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		if err := rt.Destroy(ctx, app); err != nil {
			t.Errorf("cleanup: destroy %s: %v", app, err)
		}
	})
	return e
}

// ctx bounds one runtime call.
func (e *env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.t.Context(), callTimeout)
}

// release is version v of the case's app. Env always has RELEASE=vN and
// FOO=bar; extra adds to it.
func (e *env) release(v uint64, extra map[string]string, procs ...scheduler.Process) scheduler.Release {
	envs := map[string]string{"RELEASE": fmt.Sprintf("v%d", v), "FOO": "bar"}
	maps.Copy(envs, extra)
	return scheduler.Release{
		App:         e.app,
		Version:     v,
		Image:       e.image,
		Env:         envs,
		Processes:   procs,
		KillTimeout: 5 * time.Second,
	}
}

// web is the test app's web process with an HTTP check of /healthz.
func web(n int) scheduler.Process {
	return scheduler.Process{Name: "web", Count: n, Check: scheduler.Check{
		Type: scheduler.CheckHTTP, Path: "/healthz", Interval: time.Second, Timeout: 2 * time.Second,
	}}
}

// worker is the test app's worker, started as a Procfile command would be.
func worker(n int) scheduler.Process {
	return scheduler.Process{Name: "worker", Command: "testapp worker", Count: n, Check: scheduler.Check{Type: scheduler.CheckNone}}
}

func (e *env) start(rel scheduler.Release) {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.rt.Start(ctx, rel); err != nil {
		e.t.Fatalf("Start %s v%d: %v", rel.App, rel.Version, err)
	}
}

func (e *env) stopRelease(v uint64, drain time.Duration) {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.rt.StopRelease(ctx, e.app, v, drain); err != nil {
		e.t.Fatalf("StopRelease v%d: %v", v, err)
	}
}

// cond is a fact about an app's instances; nil when it holds.
type cond func([]scheduler.Instance) error

// waitFor polls rt's Instances until c holds and returns them.
func (e *env) waitFor(what string, timeout time.Duration, c cond) []scheduler.Instance {
	e.t.Helper()
	return e.waitOn(e.rt, what, timeout, c)
}

func (e *env) waitOn(rt scheduler.Runtime, what string, timeout time.Duration, c cond) []scheduler.Instance {
	e.t.Helper()
	var last []scheduler.Instance
	err := wait.For(e.t.Context(), what, timeout, pollEvery, func(ctx context.Context) error {
		is, err := rt.Instances(ctx, e.app)
		if err != nil {
			return fmt.Errorf("Instances: %w", err)
		}
		last = is
		return c(is)
	})
	if err != nil {
		e.t.Fatalf("%v\ninstances of %s:\n%s", err, e.app, table(last))
	}
	return last
}

// holds checks that c holds on every poll for d.
func (e *env) holds(what string, d time.Duration, c cond) {
	e.t.Helper()
	end := time.Now().Add(d)
	for {
		ctx, cancel := e.ctx()
		is, err := e.rt.Instances(ctx, e.app)
		cancel()
		if err != nil {
			e.t.Fatalf("Instances: %v", err)
		}
		if err := c(is); err != nil {
			e.t.Fatalf("%s: %v\ninstances of %s:\n%s", what, err, e.app, table(is))
		}
		if time.Now().After(end) {
			return
		}
		select {
		case <-e.t.Context().Done():
			return
		case <-time.After(pollEvery):
		}
	}
}

// all combines facts.
func all(cs ...cond) cond {
	return func(is []scheduler.Instance) error {
		for _, c := range cs {
			if err := c(is); err != nil {
				return err
			}
		}
		return nil
	}
}

// of selects the instances of release v and process ("" for any).
func of(is []scheduler.Instance, v uint64, process string) []scheduler.Instance {
	var out []scheduler.Instance
	for _, i := range is {
		if i.Release == v && (process == "" || i.Process == process) {
			out = append(out, i)
		}
	}
	return out
}

// active leaves out instances that are being stopped.
func active(is []scheduler.Instance) []scheduler.Instance {
	return slices.DeleteFunc(slices.Clone(is), func(i scheduler.Instance) bool { return i.State == scheduler.StateStopping })
}

// formation holds when release v has exactly n active instances of
// process, numbered 1..n, all running and healthy.
func formation(v uint64, process string, n int) cond {
	return func(is []scheduler.Instance) error {
		got := active(of(is, v, process))
		if len(got) != n {
			return fmt.Errorf("v%d has %d active %s instances, want %d", v, len(got), process, n)
		}
		seen := map[int]bool{}
		for _, i := range got {
			if i.Index < 1 || i.Index > n || seen[i.Index] {
				return fmt.Errorf("v%d %s: unexpected index in %s", v, process, i.Name())
			}
			seen[i.Index] = true
			if i.State != scheduler.StateRunning || !i.Healthy {
				return fmt.Errorf("v%d %s is %s, healthy=%v (%s)", v, i.Name(), i.State, i.Healthy, i.Message)
			}
		}
		return nil
	}
}

// none holds when release v (of process, "" for any) has no instance at all.
func none(v uint64, process string) cond {
	return func(is []scheduler.Instance) error {
		if got := of(is, v, process); len(got) > 0 {
			return fmt.Errorf("v%d still has %d %s instances", v, len(got), orAny(process))
		}
		return nil
	}
}

// neverHealthy fails the test at once if an instance of v is Healthy.
func (e *env) neverHealthy(v uint64) cond {
	return func(is []scheduler.Instance) error {
		for _, i := range of(is, v, "") {
			if i.Healthy {
				e.t.Fatalf("v%d %s is Healthy, but it must never be\ninstances:\n%s", v, i.Name(), table(is))
			}
		}
		return nil
	}
}

func orAny(process string) string {
	if process == "" {
		return "(any)"
	}
	return process
}

func ids(is []scheduler.Instance) []string {
	out := make([]string, 0, len(is))
	for _, i := range is {
		out = append(out, i.ID)
	}
	slices.Sort(out)
	return out
}

func names(is []scheduler.Instance) []string {
	out := make([]string, 0, len(is))
	for _, i := range is {
		out = append(out, i.Name())
	}
	slices.Sort(out)
	return out
}

// table renders instances for failure messages.
func table(is []scheduler.Instance) string {
	if len(is) == 0 {
		return "  (none)"
	}
	var b strings.Builder
	for _, i := range is {
		fmt.Fprintf(&b, "  v%d %-9s %-8s healthy=%-5v addr=%-21s id=%.12s msg=%q\n",
			i.Release, i.Name(), i.State, i.Healthy, i.Addr, i.ID, i.Message)
	}
	return b.String()
}

// httpc talks to instances: a new connection per request, so a request
// reaches the instance at that moment, and no proxy.
var httpc = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
}

// get sends GET path to addr and returns the status and body.
func get(ctx context.Context, addr, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), err
}

// mustGet expects a 200 answer and returns its body.
func (e *env) mustGet(addr, path string) string {
	e.t.Helper()
	code, body, err := get(e.t.Context(), addr, path)
	if err != nil {
		e.t.Fatalf("GET http://%s%s: %v", addr, path, err)
	}
	if code != http.StatusOK {
		e.t.Fatalf("GET http://%s%s: %d %q", addr, path, code, body)
	}
	return body
}

// answers checks that addr serves release v.
func answers(ctx context.Context, addr string, v uint64) error {
	code, body, err := get(ctx, addr, "/")
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("ok v%d ", v); code != http.StatusOK || !strings.HasPrefix(body, want) {
		return fmt.Errorf("GET http://%s/: %d %q, want 200 %q...", addr, code, body, want)
	}
	return nil
}

// poller runs a probe over and over in the background and counts the
// rounds that failed.
type poller struct {
	stop  chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	n     int
	fails []string
}

func (e *env) poll(every time.Duration, probe func(context.Context) error) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := probe(ctx)
			cancel()
			p.mu.Lock()
			p.n++
			if err != nil {
				p.fails = append(p.fails, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(every):
			}
		}
	}()
	e.t.Cleanup(func() { p.finish() }) // also if the case fails first
	return p
}

// finish stops the probe and returns how many rounds ran and the failures.
func (p *poller) finish() (int, []string) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.fails
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// endedNormally says a following Logs ended as it should once its context
// ended.
func endedNormally(err error) bool {
	return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
