package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
	"github.com/berthpaas/berth/internal/wait"
)

// waitInstances waits until the app runs exactly want healthy instances
// (by name) of release v, and returns them.
func waitInstances(t *testing.T, cl *api.Client, app string, v uint64, want ...string) []api.Instance {
	t.Helper()
	var got []api.Instance
	err := wait.For(context.Background(), fmt.Sprintf("%s to run %v of v%d", app, want, v), 60*time.Second, 250*time.Millisecond, func(ctx context.Context) error {
		insts, err := cl.Instances(ctx, app)
		if err != nil {
			return err
		}
		got = got[:0]
		var names []string
		for _, i := range insts {
			if i.Release == v && i.Healthy && i.State == "running" {
				got = append(got, i)
				names = append(names, i.Name)
			}
		}
		if strings.Join(names, ",") != strings.Join(want, ",") || len(insts) != len(want) {
			return fmt.Errorf("instances: %+v", insts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func waitDeploy(t *testing.T, cl *api.Client, app string, v uint64, state string) api.Deploy {
	t.Helper()
	var dep api.Deploy
	err := wait.For(context.Background(), fmt.Sprintf("deploy of %s v%d to be %s", app, v, state), 120*time.Second, 200*time.Millisecond, func(ctx context.Context) error {
		deps, _, err := cl.Deploys(ctx, app, nil)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if d.To == v {
				dep = d
				if d.State == state {
					return nil
				}
				return fmt.Errorf("it is %s (%s)", d.State, d.Reason)
			}
		}
		return fmt.Errorf("no deploy of v%d", v)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dep
}

func TestRuntimeDeployScaleRunLogsAndHealing(t *testing.T) {
	c := newBuildCluster(t, nil)
	cl := c.Client(0)
	ctx := ctxT(t, 15*time.Minute)
	if _, err := cl.CreateApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	cli := newCLI(t, c.Servers[0].APIAddr, c.RootToken)
	p := newPusher(t, c, "web", "go", newKey(t, cl, "k"))
	out := p.mustPush("main")
	for _, want := range []string{"Starting v1", "v1 is healthy and now serves traffic", "Deployed v1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("push output lacks %q:\n%s", want, out)
		}
	}
	web := waitInstances(t, cl, "web", 1, "web.1")
	if body := get(t, web[0].Addr, "/"); !strings.Contains(body, "go") {
		t.Fatalf("web.1 answers %q", body)
	}
	if body := get(t, web[0].Addr, "/env/PORT"); body != "5000" {
		t.Fatalf("PORT inside = %q", body)
	}

	t.Run("scale", func(t *testing.T) {
		cli.ok("scale", "-a", "web", "web=2", "worker=1")
		waitInstances(t, cl, "web", 1, "web.1", "web.2", "worker.1")
		cli.ok("scale", "-a", "web", "worker=0", "web=1")
		waitInstances(t, cl, "web", 1, "web.1")
		cli.fails("unknown process type", "scale", "-a", "web", "nope=1")
		cli.fails("counts go from 0 to", "scale", "-a", "web", "web=-1")
		cli.fails("counts go from 0 to", "scale", "-a", "web", "web=100000")
		if out := cli.ok("ps", "-a", "web"); !strings.Contains(out, "web.1") || !strings.Contains(out, "healthy") {
			t.Fatalf("berth ps:\n%s", out)
		}
	})

	t.Run("config change deploys blue-green", func(t *testing.T) {
		cli.ok("config", "set", "-a", "web", "GREETING=hello")
		waitDeploy(t, cl, "web", 2, "done")
		web := waitInstances(t, cl, "web", 2, "web.1")
		if body := get(t, web[0].Addr, "/env/GREETING"); body != "hello" {
			t.Fatalf("GREETING in v2 = %q", body)
		}
	})

	t.Run("run", func(t *testing.T) {
		stdout, _, code := cli.run("", "run", "-a", "web", "--", "sh", "-c", "echo $GREETING; exit 3")
		if code != 3 || strings.TrimSpace(stdout) != "hello" {
			t.Fatalf("run exit 3: code %d, out %q", code, stdout)
		}
		stdout, _, code = cli.run("from stdin\n", "run", "-a", "web", "--", "cat")
		if code != 0 || strings.TrimSpace(stdout) != "from stdin" {
			t.Fatalf("run cat: code %d, out %q", code, stdout)
		}
		_, _, code = cli.run("", "run", "-a", "web", "--", "no-such-command")
		if code != 127 && code != 126 {
			t.Fatalf("run of a missing command exited %d, want 127", code)
		}
	})

	t.Run("logs", func(t *testing.T) {
		web := waitInstances(t, cl, "web", 2, "web.1")
		get(t, web[0].Addr, "/logged-path")
		err := wait.For(ctx, "the request in the logs", 20*time.Second, 500*time.Millisecond, func(context.Context) error {
			if out := cli.ok("logs", "-a", "web", "-p", "web", "-n", "50"); !strings.Contains(out, "web.1") {
				return fmt.Errorf("logs:\n%s", out)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a killed instance is replaced", func(t *testing.T) {
		web := waitInstances(t, cl, "web", 2, "web.1")
		if out, err := exec.Command("docker", "rm", "-f", web[0].ID).CombinedOutput(); err != nil {
			t.Fatalf("docker rm: %v %s", err, out)
		}
		again := waitInstances(t, cl, "web", 2, "web.1")
		if again[0].ID == web[0].ID {
			t.Fatal("the killed instance is still listed")
		}
	})

	t.Run("restart replaces every instance", func(t *testing.T) {
		before := waitInstances(t, cl, "web", 2, "web.1")
		cli.ok("restart", "-a", "web")
		after := waitInstances(t, cl, "web", 2, "web.1")
		if after[0].ID == before[0].ID {
			t.Fatal("restart kept the old instance")
		}
	})

	t.Run("a release that fails its checks never takes over", func(t *testing.T) {
		cli.ok("apps", "update", "web", "--deploy-timeout", "8s")
		// /env/NEVER_SET answers 404: v3 (a config change) never gets healthy.
		cli.ok("checks", "set", "-a", "web", "web", "--path", "/env/NEVER_SET", "--timeout", "1s")
		cli.ok("config", "set", "-a", "web", "TRIGGER=1")
		dep := waitDeploy(t, cl, "web", 3, "failed")
		if !strings.Contains(dep.Reason, "404") {
			t.Fatalf("failed deploy reason %q does not name the check result", dep.Reason)
		}
		cli.ok("checks", "set", "-a", "web", "web", "--path", "/")
		web := waitInstances(t, cl, "web", 2, "web.1")
		if body := get(t, web[0].Addr, "/"); !strings.Contains(body, "go") {
			t.Fatalf("v2 stopped answering: %q", body)
		}
		// A web process that exits at once fails the push, fast.
		p.write("Procfile", "web: sh -c 'echo broken release; exit 1'\n")
		p.commit("broken")
		start := time.Now()
		out := p.mustFail("main", "deploy of v4 failed")
		if !strings.Contains(out, "previous release keeps serving") {
			t.Fatalf("push output:\n%s", out)
		}
		if d := time.Since(start); d > 2*time.Minute {
			t.Fatalf("a crashing release took %s to fail", d)
		}
		web = waitInstances(t, cl, "web", 2, "web.1")
		if body := get(t, web[0].Addr, "/"); !strings.Contains(body, "go") {
			t.Fatalf("v2 stopped answering: %q", body)
		}
		app, _, _ := cl.App(ctx, "web", nil)
		if app.ActiveRelease != 2 {
			t.Fatalf("active release is v%d after failed deploys", app.ActiveRelease)
		}
		if out := cli.ok("deploys", "-a", "web"); strings.Count(out, "failed") < 2 {
			t.Fatalf("berth deploys:\n%s", out)
		}
	})
}

// TestLeaderFailoverMidDeploy kills the leader while a deploy waits for a
// slow-starting release: the next leader finishes it.
func TestLeaderFailoverMidDeploy(t *testing.T) {
	requireDocker(t)
	c := startCluster(t, 3, harness.Options{Builds: true, Stack: testStack, Runtime: "docker"})
	ctx := ctxT(t, 10*time.Minute)
	leader, err := c.WaitLeader(ctx, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := follower(c, leader)
	cl := c.Client(f)
	if _, err := cl.CreateApp(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	// The point is the takeover, not the deadline: a leader killed between
	// creating and starting the container leaves one that the next leader
	// replaces after the engine timeout (30 s).
	if _, err := cl.UpdateApp(ctx, "slow", api.AppUpdateRequest{DeployTimeout: ptr("3m")}); err != nil {
		t.Fatal(err)
	}
	// An image whose web process answers only 6 s after it starts.
	tag := "berth-e2e/slow:" + c.RuntimeCluster()
	build := exec.Command("docker", "build", "-q", "-t", tag, "-")
	build.Stdin = bytes.NewBufferString("FROM " + testStack + "\nCMD [\"sh\", \"-c\", \"sleep 6; exec python3 -m http.server $PORT\"]\n")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })

	done := make(chan error, 1)
	go func() {
		_, err := cl.DeployImage(ctx, "slow", api.ImageDeployRequest{Image: tag})
		done <- err
	}()
	waitDeploy(t, cl, "slow", 1, "starting")
	c.Kill(leader)
	if err := <-done; err != nil {
		t.Fatalf("deploy through a follower while the leader died: %v", err)
	}
	dep := waitDeploy(t, cl, "slow", 1, "done")
	if len(dep.Steps) < 4 {
		t.Fatalf("deploy steps: %+v", dep.Steps)
	}
	waitInstances(t, cl, "slow", 1, "web.1")
	app, _, _ := cl.App(ctx, "slow", nil)
	if app.ActiveRelease != 1 {
		t.Fatalf("active release = v%d", app.ActiveRelease)
	}
}

func ptr[T any](v T) *T { return &v }
