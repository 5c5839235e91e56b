package nomad

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/internal/wait"
	"github.com/berthpaas/berth/scheduler"
	"github.com/berthpaas/berth/scheduler/nomad/nomadtest"
)

// BenchmarkStartToHealthy compares, side by side in one run, how long a
// release of a prebuilt image takes to serve on the nomad runtime with
// what `nomad job run` of an equivalent hand-written job with Nomad's
// default update stanza takes, on the same dev agents:
//
//   - berth-first-s, berth-all-s: from Start until the first / all of 3
//     web instances are Healthy in Instances (Consul checks passing);
//   - berth-consul-first-s: until Consul has the first one passing (what
//     a router reading Consul sees);
//   - nomad-first-s, nomad-all-s: from registering the hand-written job
//     until the first / all of its 3 instances pass in Consul;
//   - nomad-run-s: until its deployment succeeded (when `nomad job run`
//     returns; min_healthy_time is 10 s by default).
//
// Run it with: go test ./scheduler/nomad -run '^$' -bench StartToHealthy -benchtime 4x
func BenchmarkStartToHealthy(b *testing.B) {
	needDocker(b)
	agents := nomadtest.Start(b)
	image := buildBenchImage(b)
	r := newTestRuntime(b, agents)
	nc, err := api.NewClient(&api.Config{Address: agents.NomadAddr})
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	cc, err := consul.NewClient(&consul.Config{Address: agents.ConsulAddr})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const count = 3
	var berthFirst, berthConsulFirst, berthAll, nomadFirst, nomadAll, nomadRun time.Duration
	b.ResetTimer()
	for i := range b.N {
		runBerth := func() {
			rel := scheduler.Release{
				App: fmt.Sprintf("bench-%d", i), Version: 1, Image: image,
				Env: map[string]string{"RELEASE": "v1"}, KillTimeout: 5 * time.Second,
				Processes: []scheduler.Process{{Name: "web", Count: count, Check: scheduler.Check{
					Type: scheduler.CheckHTTP, Path: "/healthz", Interval: time.Second, Timeout: 2 * time.Second}}},
			}
			began := time.Now()
			if err := r.Start(ctx, rel); err != nil {
				b.Fatal(err)
			}
			var consulFirst time.Time
			first, all := waitHealthy(b, count, func(ctx context.Context) (int, error) {
				if consulFirst.IsZero() {
					// What a router reading Consul sees.
					es, _, err := cc.Health().Service(serviceName(rel.App, "web"), "", true, (&consul.QueryOptions{}).WithContext(ctx))
					if err == nil && len(es) > 0 {
						consulFirst = time.Now()
					}
				}
				is, err := r.Instances(ctx, rel.App)
				n := 0
				for _, in := range is {
					if in.Healthy {
						n++
					}
				}
				return n, err
			})
			berthFirst += first.Sub(began)
			berthAll += all.Sub(began)
			if consulFirst.IsZero() || consulFirst.After(first) {
				consulFirst = first
			}
			berthConsulFirst += consulFirst.Sub(began)
			if err := r.Destroy(ctx, rel.App); err != nil {
				b.Fatal(err)
			}
		}
		runNomad := func() {
			job := handWrittenJob(fmt.Sprintf("plain-%d", i), image, count)
			began := time.Now()
			resp, _, err := nc.Jobs().Register(job, nil)
			if err != nil {
				b.Fatal(err)
			}
			service := *job.ID + "-web"
			first, all := waitHealthy(b, count, func(ctx context.Context) (int, error) {
				es, _, err := cc.Health().Service(service, "", true, (&consul.QueryOptions{}).WithContext(ctx))
				return len(es), err
			})
			nomadFirst += first.Sub(began)
			nomadAll += all.Sub(began)
			if err := r.waitDeployment(ctx, *job.ID, resp.EvalID); err != nil {
				b.Fatal(err)
			}
			nomadRun += time.Since(began)
			if _, _, err := nc.Jobs().DeregisterOpts(*job.ID, &api.DeregisterOptions{Purge: true, NoShutdownDelay: true}, nil); err != nil {
				b.Fatal(err)
			}
			if err := r.waitGone(ctx, fmt.Sprintf(`JobID == "%s"`, *job.ID)); err != nil {
				b.Fatal(err)
			}
		}
		// Alternate which goes first, so neither always meets a colder engine.
		if i%2 == 0 {
			runBerth()
			runNomad()
		} else {
			runNomad()
			runBerth()
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(berthFirst.Seconds()/n, "berth-first-s")
	b.ReportMetric(berthConsulFirst.Seconds()/n, "berth-consul-first-s")
	b.ReportMetric(berthAll.Seconds()/n, "berth-all-s")
	b.ReportMetric(nomadFirst.Seconds()/n, "nomad-first-s")
	b.ReportMetric(nomadAll.Seconds()/n, "nomad-all-s")
	b.ReportMetric(nomadRun.Seconds()/n, "nomad-run-s")
	b.ReportMetric(berthAll.Seconds()/nomadRun.Seconds(), "berth-all/nomad-run")
}

// waitHealthy polls healthy (how many instances pass) and returns when the
// first and when all count instances passed.
func waitHealthy(b *testing.B, count int, healthy func(context.Context) (int, error)) (first, all time.Time) {
	err := wait.For(context.Background(), fmt.Sprintf("%d healthy instances", count), 3*time.Minute, 50*time.Millisecond, func(ctx context.Context) error {
		n, err := healthy(ctx)
		if err != nil {
			return err
		}
		if n > 0 && first.IsZero() {
			first = time.Now()
		}
		if n < count {
			return fmt.Errorf("%d healthy", n)
		}
		all = time.Now()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return first, all
}

// handWrittenJob is what an operator would write for the same app: one
// group, a dynamic port mapped to 5000, a Consul service with the same
// HTTP check, and the job-level default update stanza of `nomad job init`
// (api.DefaultUpdateStrategy: min_healthy_time 10 s).
func handWrittenJob(id, image string, count int) *api.Job {
	job := api.NewServiceJob(id, id, "", 50)
	job.Datacenters = []string{"dc1"}
	job.Update = api.DefaultUpdateStrategy()
	task := api.NewTask("web", "docker").
		SetConfig("image", image).
		SetConfig("force_pull", false).
		SetConfig("ports", []string{"http"}).
		Require(&api.Resources{CPU: new(100), MemoryMB: new(256)})
	task.Env = map[string]string{"PORT": "5000", "RELEASE": "v1"}
	g := api.NewTaskGroup("web", count).AddTask(task)
	g.Networks = []*api.NetworkResource{{DynamicPorts: []api.Port{{Label: "http", To: 5000}}}}
	g.Services = []*api.Service{{Name: id + "-web", PortLabel: "http", Provider: "consul", Checks: []api.ServiceCheck{{
		Type: "http", Path: "/healthz", Interval: time.Second, Timeout: 2 * time.Second,
	}}}}
	return job.AddTaskGroup(g)
}

// buildBenchImage builds the conformance suite's test app into a local
// image FROM scratch, as runtimetest.BuildTestImage does (which takes a
// *testing.T), and removes it when the benchmark ends.
func buildBenchImage(b *testing.B) string {
	dir := b.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "testapp"),
		"github.com/berthpaas/berth/scheduler/runtimetest/testapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build the test app: %v\n%s", err, out)
	}
	dockerfile := "FROM scratch\nCOPY testapp /testapp\nCOPY testapp /bin/sh\nENTRYPOINT [\"/testapp\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		b.Fatal(err)
	}
	tag := "berth-nomad-bench:" + randomHex(6)
	cmd := exec.Command("docker", "build", "-q", "-t", tag, dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("docker build: %v\n%s", err, out)
	}
	b.Cleanup(func() {
		if out, err := exec.Command("docker", "rmi", "-f", tag).CombinedOutput(); err != nil {
			b.Logf("remove %s: %v: %s", tag, err, strings.TrimSpace(string(out)))
		}
	})
	return tag
}
