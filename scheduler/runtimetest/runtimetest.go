// Package runtimetest is the conformance suite of scheduler.Runtime: one
// set of cases that every runtime (docker, nomad) passes against a real
// engine, so the deployer can rely on the same behaviour from both.
//
// A runtime's test calls Run with a Harness. The cases run the test app
// (package testapp, built into an image by BuildTestImage) and check what
// the deployer and the router depend on: formations converge, checks run
// from outside gate Healthy, releases run side by side and stop with a
// drain, restarts never leave a process without a serving instance, Start
// repairs killed instances, and a new runtime value adopts what an old one
// started.
//
// Conventions the cases rely on:
//   - Each case uses its own app ("rtXXXX-<case>") and its own runtime
//     from Harness.New, and runs in parallel with the others.
//   - Process "web" runs the image's entrypoint (Command ""), listens on
//     $PORT (5000) and is checked with GET /healthz. Process "worker" has
//     Command "testapp worker", which the runtime runs with /bin/sh -c
//     (the test image's /bin/sh is the test app, splitting words).
//   - Run commands are argv: "/testapp exit 3", "/testapp echo".
//   - Instance.Addr is reachable from the test process.
//
// What the cases require beyond the obvious (each is a real contract of
// the deployer or the router):
//   - Instances of an app with nothing running is empty, not an error.
//   - Start of an unchanged release changes nothing (same IDs for 3 s);
//     scaling keeps the instances that stay (web.1 keeps its ID) and
//     removes the highest indexes.
//   - StopRelease(drain) makes the release's instances not Healthy at once
//     (within the drain), keeps them serving during the drain, returns
//     only after the drain, and they are gone within a minute.
//   - A failing check shows in Message ("500" for an HTTP 500); a crashing
//     instance is StateFailed or StateExited with a Message; neither is
//     ever Healthy. An instance is not Healthy before it listens.
//   - Restart gives every instance a new ID, and at every moment at least
//     one Healthy instance answers (what a router sees).
//   - A killed instance is reported down (gone, not Healthy, or restarted
//     with a new StartedAt) within 30 s; Start, called every 2 s, restores
//     the formation.
//   - Run passes stdin, returns the exit code, and returns (with an error
//     or a non-zero code) for a missing executable; Detach returns at once.
//   - Logs: Tail is per instance, lines are named "web.1", Follow with a
//     Process filter delivers new lines within seconds and returns soon
//     after its context ends (nil or the context's error).
//   - A second runtime value from Harness.New sees the same instance IDs on
//     its first Instances call, and its Start creates no duplicates.
//
// The test image has no real shell: its /bin/sh is the test app, which
// splits `-c COMMAND` into words and executes them (looking bare names up
// in /), with `sleep D|infinity` and `exit N` built in. Runtimes must
// replace the image's ENTRYPOINT (/testapp) for a Command or a Run argv,
// not only its CMD.
package runtimetest

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
	"github.com/berthpaas/berth/scheduler"
)

// Harness adapts one runtime to the suite.
type Harness struct {
	// New returns a fresh runtime value for a case (its cleanup goes
	// through t.Cleanup). Values made by New share one engine and cluster,
	// so a second value sees what the first started (adoption).
	New func(t *testing.T) scheduler.Runtime
	// Image returns an image reference of the test app the runtime can run
	// (docker: a local tag; nomad: pushed to a registry the agents pull
	// from). It is called once per Run.
	Image func(t *testing.T) string
	// Kill kills one instance hard, behind the runtime's back (docker: kill
	// its container with SIGKILL), so the suite can check it is replaced.
	Kill func(t *testing.T, inst scheduler.Instance)
}

// Run runs the suite as parallel subtests of t and returns when all are
// done.
func Run(t *testing.T, h Harness) {
	img := h.Image(t)
	prefix := "rt" + randomHex(2)
	cases := []struct {
		name string
		run  func(*env)
	}{
		{"deploy", testDeploy},
		{"slow-start", testSlowStart},
		{"scale", testScale},
		{"blue-green", testBlueGreen},
		{"failing", testFailing},
		{"logs", testLogs},
		{"run", testRun},
		{"restart", testRestart},
		{"kill", testKill},
		{"destroy", testDestroy},
		{"adoption", testAdoption},
	}
	t.Run("suite", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.run(newEnv(t, h, img, prefix+"-"+c.name))
			})
		}
	})
}

// deploy: a release with web=2 and worker=1 runs, is healthy, serves on
// its addresses with its config and PORT=5000; Start again changes
// nothing.
func testDeploy(e *env) {
	rel := e.release(1, nil, web(2), worker(1))
	e.start(rel)
	is := e.waitFor("web=2 worker=1 running and healthy", startTimeout,
		all(formation(1, "web", 2), formation(1, "worker", 1)))
	is = active(of(is, 1, ""))
	if got, want := names(is), []string{"web.1", "web.2", "worker.1"}; !slices.Equal(got, want) {
		e.t.Fatalf("instances %v, want %v", got, want)
	}
	seen := map[string]bool{}
	for _, i := range is {
		if i.ID == "" || seen[i.ID] {
			e.t.Errorf("%s: ID %q empty or not unique", i.Name(), i.ID)
		}
		seen[i.ID] = true
		if i.App != e.app || i.Release != 1 || i.StartedAt.IsZero() {
			e.t.Errorf("%s: App %q Release %d StartedAt %v", i.Name(), i.App, i.Release, i.StartedAt)
		}
		if i.Process != "web" {
			continue
		}
		if i.Addr == "" {
			e.t.Fatalf("%s has no Addr", i.Name())
		}
		if err := answers(e.t.Context(), i.Addr, 1); err != nil {
			e.t.Errorf("%s: %v", i.Name(), err)
		}
		if got := e.mustGet(i.Addr, "/env/FOO"); got != "bar" {
			e.t.Errorf("%s: FOO=%q, want bar", i.Name(), got)
		}
		if got := e.mustGet(i.Addr, "/env/PORT"); got != "5000" {
			e.t.Errorf("%s: PORT=%q, want 5000", i.Name(), got)
		}
	}

	// Start is idempotent: the same release again creates and stops nothing.
	e.start(rel)
	e.holds("Start of a running release changes nothing", 3*time.Second, func(now []scheduler.Instance) error {
		if got, want := ids(now), ids(is); !slices.Equal(got, want) {
			return fmt.Errorf("instance IDs %v, want %v", got, want)
		}
		return nil
	})
}

// slow-start: an instance is not Healthy before it listens, and is after.
func testSlowStart(e *env) {
	rel := e.release(1, map[string]string{"SLOW_START": "4s"}, web(1))
	e.start(rel)
	// The app listens 4 s after its process started, which was before
	// Start returned.
	e.holds("not Healthy before it listens", 2*time.Second, e.neverHealthy(1))
	e.waitFor("healthy once it listens", startTimeout, formation(1, "web", 1))
}

// scale: up adds instances next to the running ones; down removes the
// highest indexes; 0 removes the process.
func testScale(e *env) {
	e.start(e.release(1, nil, web(1), worker(1)))
	is := e.waitFor("web=1 worker=1", startTimeout, all(formation(1, "web", 1), formation(1, "worker", 1)))
	first := of(is, 1, "web")[0].ID

	e.start(e.release(1, nil, web(3), worker(1)))
	is = e.waitFor("web=3", startTimeout, all(formation(1, "web", 3), formation(1, "worker", 1)))
	if got := active(of(is, 1, "web")); got[0].Index != 1 || got[0].ID != first {
		e.t.Fatalf("scaling up replaced web.1:\n%s", table(is))
	}

	e.start(e.release(1, nil, web(1), worker(1)))
	e.waitFor("web=1 (web.2 and web.3 removed)", goneTimeout, func(is []scheduler.Instance) error {
		webs := of(is, 1, "web")
		if len(webs) != 1 || webs[0].ID != first {
			return fmt.Errorf("web instances %v, want only the first web.1", names(webs))
		}
		return formation(1, "worker", 1)(is)
	})

	e.start(e.release(1, nil, web(1), worker(0)))
	e.waitFor("worker=0", goneTimeout, all(none(1, "worker"), formation(1, "web", 1)))
}

// blue-green: v2 starts next to v1 without disturbing it; stopping v1
// takes it out of discovery at once, keeps it serving for the drain, then
// removes it.
func testBlueGreen(e *env) {
	e.start(e.release(1, nil, web(2)))
	is := e.waitFor("v1 web=2", startTimeout, formation(1, "web", 2))
	var v1 []string
	for _, i := range of(is, 1, "web") {
		v1 = append(v1, i.Addr)
	}
	p := e.poll(50*time.Millisecond, func(ctx context.Context) error {
		for _, a := range v1 {
			if err := answers(ctx, a, 1); err != nil {
				return err
			}
		}
		return nil
	})

	e.start(e.release(2, nil, web(2)))
	is = e.waitFor("v2 web=2 healthy next to v1 web=2", startTimeout,
		all(formation(2, "web", 2), formation(1, "web", 2)))
	if n, fails := p.finish(); len(fails) > 0 {
		e.t.Fatalf("%d of %d rounds of GETs to v1 failed while v2 started:\n%s", len(fails), n, strings.Join(fails, "\n"))
	}
	for _, i := range of(is, 2, "web") {
		if err := answers(e.t.Context(), i.Addr, 2); err != nil {
			e.t.Fatal(err)
		}
	}

	const drain = 4 * time.Second
	ctx, cancel := e.ctx()
	defer cancel()
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- e.rt.StopRelease(ctx, e.app, 1, drain) }()
	e.waitFor("v1 out of discovery at once", drain, func(is []scheduler.Instance) error {
		for _, i := range of(is, 1, "") {
			if i.Healthy {
				return fmt.Errorf("v1 %s is still Healthy", i.Name())
			}
		}
		return nil
	})
	if time.Since(began) < drain-2*time.Second {
		// Out of discovery, but still serving in-flight and late requests.
		if err := answers(e.t.Context(), v1[0], 1); err != nil {
			e.t.Errorf("v1 stopped serving during its drain: %v", err)
		}
	} else {
		e.t.Logf("leaving discovery took %s; not checking that v1 serves during its drain", time.Since(began))
	}
	select {
	case err := <-stopped:
		if err != nil {
			e.t.Fatalf("StopRelease v1: %v", err)
		}
	case <-time.After(callTimeout):
		e.t.Fatal("StopRelease v1 did not return")
	}
	if took := time.Since(began); took < drain {
		e.t.Errorf("StopRelease returned after %s, before its drain of %s", took, drain)
	}
	e.waitFor("v1 gone, v2 still web=2", goneTimeout, all(none(1, ""), formation(2, "web", 2)))
	for _, i := range of(is, 2, "web") {
		if err := answers(e.t.Context(), i.Addr, 2); err != nil {
			e.t.Fatal(err)
		}
	}
}

// failing: a release whose checks fail, or that crashes, is never Healthy
// and says why; the running release keeps serving; StopRelease cleans up.
func testFailing(e *env) {
	e.start(e.release(1, nil, web(1)))
	is := e.waitFor("v1 web=1", startTimeout, formation(1, "web", 1))
	addr := of(is, 1, "web")[0].Addr

	e.start(e.release(2, map[string]string{"FAIL_HEALTH": "1"}, web(1)))
	is = e.waitFor("v2 running, failing its check with the reason", startTimeout, all(e.neverHealthy(2), func(is []scheduler.Instance) error {
		v2 := of(is, 2, "web")
		if len(v2) != 1 || v2[0].State != scheduler.StateRunning || !strings.Contains(v2[0].Message, "500") {
			return fmt.Errorf("want one running v2 instance whose Message mentions the 500")
		}
		return nil
	}))
	e.t.Logf("failing check: %s %q", of(is, 2, "web")[0].State, of(is, 2, "web")[0].Message)
	e.holds("v2 stays unhealthy", 3*time.Second, e.neverHealthy(2))
	if err := answers(e.t.Context(), addr, 1); err != nil {
		e.t.Fatalf("v1 stopped serving: %v", err)
	}
	e.stopRelease(2, 0)
	e.waitFor("v2 gone", goneTimeout, none(2, ""))

	e.start(e.release(3, map[string]string{"CRASH": "1"}, web(1)))
	is = e.waitFor("v3 reported crashed with a reason", startTimeout, all(e.neverHealthy(3), func(is []scheduler.Instance) error {
		v3 := of(is, 3, "web")
		if len(v3) != 1 {
			return fmt.Errorf("v3 has %d instances, want 1", len(v3))
		}
		if s := v3[0].State; (s != scheduler.StateFailed && s != scheduler.StateExited) || v3[0].Message == "" {
			return fmt.Errorf("v3 web.1 is %s (%q), want failed or exited with a message", s, v3[0].Message)
		}
		return nil
	}))
	e.t.Logf("crash: %s %q", of(is, 3, "web")[0].State, of(is, 3, "web")[0].Message)
	e.holds("v3 stays unhealthy", 3*time.Second, e.neverHealthy(3))
	if err := answers(e.t.Context(), addr, 1); err != nil {
		e.t.Fatalf("v1 stopped serving: %v", err)
	}
	e.stopRelease(3, 0)
	e.waitFor("v3 gone, v1 still serving", goneTimeout, all(none(3, ""), formation(1, "web", 1)))
	if err := answers(e.t.Context(), addr, 1); err != nil {
		e.t.Fatalf("v1 stopped serving: %v", err)
	}
}

// logs: lines carry the instance name; Tail, Process and Follow work.
func testLogs(e *env) {
	w := web(1)
	// A TCP check: HTTP checks would fill the web's log with their requests.
	w.Check = scheduler.Check{Type: scheduler.CheckTCP, Interval: time.Second, Timeout: 2 * time.Second}
	e.start(e.release(1, nil, w, worker(1)))
	is := e.waitFor("web=1 worker=1", startTimeout, all(formation(1, "web", 1), formation(1, "worker", 1)))
	addr := of(is, 1, "web")[0].Addr
	e.mustGet(addr, "/")

	var lines []scheduler.LogLine
	collect := func(l scheduler.LogLine) { lines = append(lines, l) }
	err := wait.For(e.t.Context(), `"started" of web.1 and "tick" of worker.1 in Logs`, 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		lines = nil
		if err := e.rt.Logs(ctx, e.app, scheduler.LogOptions{Tail: 10}, collect); err != nil {
			return err
		}
		per := map[string]int{}
		var started, tick bool
		for _, l := range lines {
			per[l.Instance]++
			if l.Time.IsZero() {
				e.t.Fatalf("line without a time: %+v", l)
			}
			started = started || l.Instance == "web.1" && strings.Contains(l.Text, "started")
			tick = tick || l.Instance == "worker.1" && strings.Contains(l.Text, "tick")
		}
		for inst, n := range per {
			if inst != "web.1" && inst != "worker.1" {
				e.t.Fatalf("line of unknown instance %q", inst)
			}
			if n > 10 {
				e.t.Fatalf("%d lines of %s with Tail 10", n, inst)
			}
		}
		if !started || !tick {
			return fmt.Errorf("started=%v tick=%v in %d lines", started, tick, len(lines))
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("%v\nlines: %+v", err, lines)
	}

	ctx, cancel := e.ctx()
	defer cancel()
	lines = nil
	if err := e.rt.Logs(ctx, e.app, scheduler.LogOptions{Process: "worker", Tail: 5}, collect); err != nil {
		e.t.Fatalf("Logs of worker: %v", err)
	}
	if len(lines) == 0 || len(lines) > 5 {
		e.t.Fatalf("Logs of worker with Tail 5 gave %d lines", len(lines))
	}
	for _, l := range lines {
		if l.Instance != "worker.1" {
			e.t.Fatalf("Logs of worker gave a line of %s", l.Instance)
		}
	}

	// Follow: a request made now shows up within seconds.
	fctx, fcancel := context.WithCancel(e.t.Context())
	defer fcancel()
	var (
		mu       sync.Mutex
		followed []scheduler.LogLine
	)
	ended := make(chan error, 1)
	go func() {
		ended <- e.rt.Logs(fctx, e.app, scheduler.LogOptions{Process: "web", Follow: true, Tail: 1}, func(l scheduler.LogLine) {
			mu.Lock()
			followed = append(followed, l)
			mu.Unlock()
		})
	}()
	marker := "/marker-" + randomHex(4)
	err = wait.For(e.t.Context(), "a new request's line while following", 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		_, _, _ = get(ctx, addr, marker) // 404, but logged
		mu.Lock()
		defer mu.Unlock()
		for _, l := range followed {
			if l.Instance != "web.1" {
				e.t.Fatalf("following web gave a line of %s", l.Instance)
			}
			if strings.Contains(l.Text, marker) {
				return nil
			}
		}
		return fmt.Errorf("%d lines so far", len(followed))
	})
	if err != nil {
		e.t.Fatal(err)
	}
	fcancel()
	select {
	case err := <-ended:
		if !endedNormally(err) {
			e.t.Fatalf("following Logs ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		e.t.Fatal("following Logs did not return after its context ended")
	}
}

// run: one-off commands get the exit code, stdin, stdout and config;
// a missing executable fails fast; detached runs return at once.
func testRun(e *env) {
	rel := e.release(1, nil, web(0))
	run := func(opts scheduler.RunOptions) (int, error) {
		ctx, cancel := e.ctx()
		defer cancel()
		return e.rt.Run(ctx, rel, opts)
	}
	if code, err := run(scheduler.RunOptions{Command: []string{"/testapp", "exit", "3"}}); err != nil || code != 3 {
		e.t.Errorf("exit 3: code %d, err %v", code, err)
	}
	var out, errOut bytes.Buffer
	code, err := run(scheduler.RunOptions{Command: []string{"/testapp", "echo"}, Stdin: strings.NewReader("hello"), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 0 || out.String() != "hello" {
		e.t.Errorf("echo: code %d, err %v, stdout %q, stderr %q", code, err, out.String(), errOut.String())
	}
	out.Reset()
	code, err = run(scheduler.RunOptions{Command: []string{"/testapp", "env", "FOO"}, Stdout: &out})
	if err != nil || code != 0 || out.String() != "bar" {
		e.t.Errorf("env FOO: code %d, err %v, stdout %q", code, err, out.String())
	}
	code, err = run(scheduler.RunOptions{Command: []string{"/no-such-program"}})
	if err == nil && code == 0 {
		e.t.Errorf("a missing executable: code 0 and no error")
	}
	e.t.Logf("missing executable: code %d, err %v", code, err)

	began := time.Now()
	if code, err := run(scheduler.RunOptions{Command: []string{"/testapp", "exit", "0"}, Detach: true}); err != nil || code != 0 {
		e.t.Errorf("detached: code %d, err %v", code, err)
	}
	if took := time.Since(began); took > 30*time.Second {
		e.t.Errorf("a detached run took %s to return", took)
	}
}

// restart: every instance is replaced one at a time, and some instance
// answers at every moment.
func testRestart(e *env) {
	rel := e.release(1, nil, web(2))
	e.start(rel)
	old := ids(of(e.waitFor("web=2", startTimeout, formation(1, "web", 2)), 1, "web"))

	// What a router does: send each request to a healthy instance, trying
	// the next one if it fails. A round fails only if none answers.
	p := e.poll(100*time.Millisecond, func(ctx context.Context) error {
		is, err := e.rt.Instances(ctx, e.app)
		if err != nil {
			return err
		}
		var errs []string
		for _, i := range of(is, 1, "web") {
			if !i.Healthy {
				continue
			}
			err := answers(ctx, i.Addr, 1)
			if err == nil {
				return nil
			}
			errs = append(errs, i.Name()+": "+err.Error())
		}
		return fmt.Errorf("no healthy web instance answered: %v", errs)
	})
	ctx, cancel := e.ctx()
	defer cancel()
	if err := e.rt.Restart(ctx, rel, "web"); err != nil {
		e.t.Fatalf("Restart: %v", err)
	}
	e.waitFor("web=2, all replaced", startTimeout, all(formation(1, "web", 2), func(is []scheduler.Instance) error {
		for _, i := range of(is, 1, "web") {
			if slices.Contains(old, i.ID) {
				return fmt.Errorf("%s (%.12s) was not replaced", i.Name(), i.ID)
			}
		}
		return nil
	}))
	n, fails := p.finish()
	if len(fails) > 0 {
		e.t.Fatalf("%d of %d rounds found no answering web instance during Restart:\n%s", len(fails), n, strings.Join(fails, "\n"))
	}
	e.t.Logf("%d rounds of requests during Restart, none failed", n)
}

// kill: an instance killed behind the runtime's back is reported down, and
// Start (the cluster's reconcile loop) brings the formation back.
func testKill(e *env) {
	rel := e.release(1, nil, web(2))
	e.start(rel)
	is := e.waitFor("web=2", startTimeout, formation(1, "web", 2))
	victim := of(is, 1, "web")[0]
	e.h.Kill(e.t, victim)
	e.waitFor("the killed instance reported down", 30*time.Second, func(is []scheduler.Instance) error {
		for _, i := range is {
			if i.ID == victim.ID && i.Healthy && i.StartedAt.Equal(victim.StartedAt) {
				return fmt.Errorf("%s is still Healthy", i.Name())
			}
		}
		return nil
	})
	var last []scheduler.Instance
	err := wait.For(e.t.Context(), "web=2 again, reconciling with Start", startTimeout, 2*time.Second, func(ctx context.Context) error {
		if err := e.rt.Start(ctx, rel); err != nil {
			return fmt.Errorf("Start: %w", err)
		}
		is, err := e.rt.Instances(ctx, e.app)
		if err != nil {
			return err
		}
		last = is
		return formation(1, "web", 2)(is)
	})
	if err != nil {
		e.t.Fatalf("%v\n%s", err, table(last))
	}
}

// destroy: every instance of every release goes; Destroy is idempotent.
func testDestroy(e *env) {
	e.start(e.release(1, nil, web(1), worker(1)))
	e.start(e.release(2, nil, web(1)))
	e.waitFor("v1 and v2 running", startTimeout, all(formation(1, "web", 1), formation(1, "worker", 1), formation(2, "web", 1)))
	for range 2 {
		ctx, cancel := e.ctx()
		err := e.rt.Destroy(ctx, e.app)
		cancel()
		if err != nil {
			e.t.Fatalf("Destroy: %v", err)
		}
	}
	e.waitFor("no instances", goneTimeout, func(is []scheduler.Instance) error {
		if len(is) > 0 {
			return fmt.Errorf("%d instances left", len(is))
		}
		return nil
	})
	ctx, cancel := e.ctx()
	defer cancel()
	if is, err := e.rt.Instances(ctx, e.app+"-never"); err != nil || len(is) > 0 {
		e.t.Fatalf("Instances of an unknown app: %v, %v; want none and no error", is, err)
	}
}

// adoption: a new runtime value (a restarted server) sees the instances an
// old one started, checks them, and starting the same release again
// creates no duplicates.
func testAdoption(e *env) {
	rel := e.release(1, nil, web(2), worker(1))
	e.start(rel)
	is := e.waitFor("web=2 worker=1", startTimeout, all(formation(1, "web", 2), formation(1, "worker", 1)))
	want := ids(is)

	rt2 := e.h.New(e.t)
	same := func(is []scheduler.Instance) error {
		if got := ids(is); !slices.Equal(got, want) {
			return fmt.Errorf("instance IDs %v, want %v", got, want)
		}
		return nil
	}
	ctx, cancel := e.ctx()
	defer cancel()
	now, err := rt2.Instances(ctx, e.app)
	if err != nil {
		e.t.Fatalf("new runtime: Instances: %v", err)
	}
	if err := same(now); err != nil {
		e.t.Fatalf("new runtime: %v", err)
	}
	e.waitOn(rt2, "the new runtime finds them healthy", startTimeout,
		all(same, formation(1, "web", 2), formation(1, "worker", 1)))
	for _, i := range of(now, 1, "web") {
		if i.Addr == "" {
			e.t.Fatalf("new runtime: %s has no Addr", i.Name())
		}
	}
	if err := rt2.Start(ctx, rel); err != nil {
		e.t.Fatalf("new runtime: Start: %v", err)
	}
	e.holds("Start on the new runtime creates no duplicates", 3*time.Second,
		all(same, formation(1, "web", 2), formation(1, "worker", 1)))
	if err := answers(e.t.Context(), of(now, 1, "web")[0].Addr, 1); err != nil {
		e.t.Fatal(err)
	}
}
