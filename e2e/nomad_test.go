package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
	"github.com/berthpaas/berth/scheduler/nomad/nomadtest"
)

// tinyServer answers $BODY on every path, after waiting $DELAY; the
// images built from it differ only by a label.
const tinyServer = `package main

import (
	"net/http"
	"os"
	"time"
)

func main() {
	if d, err := time.ParseDuration(os.Getenv("DELAY")); err == nil {
		time.Sleep(d)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(os.Getenv("BODY"))) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

// buildTinyImages builds n FROM-scratch images of tinyServer.
func buildTinyImages(t *testing.T, prefix string, n int) []string {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(tinyServer), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644)
	build := exec.Command("go", "build", "-o", "app", ".")
	build.Dir, build.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var tags []string
	for i := range n {
		tag := fmt.Sprintf("%s:%d", prefix, i)
		df := fmt.Sprintf("FROM scratch\nCOPY app /app\nLABEL n=%d\nENTRYPOINT [\"/app\"]\n", i)
		cmd := exec.Command("docker", "build", "-q", "-t", tag, "-f", "-", ".")
		cmd.Dir, cmd.Stdin = dir, bytes.NewBufferString(df)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker build: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
		tags = append(tags, tag)
	}
	return tags
}

// TestNomadRuntimeThroughTheServer runs releases on real Nomad and Consul
// dev agents: deploy, scale and a blue-green deploy of a second release.
func TestNomadRuntimeThroughTheServer(t *testing.T) {
	requireDocker(t)
	agents := nomadtest.Start(t)
	c := startCluster(t, 1, harness.Options{Builds: true, Stack: testStack, Runtime: "nomad",
		Nomad: map[string]any{"addr": agents.NomadAddr, "consul_addr": agents.ConsulAddr}, AppsDomain: "apps.test"})
	ctx := ctxT(t, 10*time.Minute)
	cl := c.Client(0)
	// A router finds the nomad runtime's instances in Consul.
	tok, err := cl.CreateToken(ctx, api.TokenCreateRequest{Name: "edge", Role: api.RoleRouter})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := c.StartRouter("edge", 0, tok.Secret, "--consul-addr", agents.ConsulAddr)
	if err != nil {
		t.Fatal(err)
	}
	tags := buildTinyImages(t, "berth-e2e/nomad-"+strings.ToLower(filepath.Base(c.Dir)), 2)
	if _, err := cl.CreateApp(ctx, "nomadapp"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UpdateConfig(ctx, "nomadapp", api.ConfigUpdateRequest{Set: map[string]string{"BODY": "first"}}); err != nil {
		t.Fatal(err)
	}
	rel, err := cl.DeployImage(ctx, "nomadapp", api.ImageDeployRequest{Image: tags[0]})
	if err != nil {
		t.Fatalf("deploy on nomad: %v", err)
	}
	web := waitInstances(t, cl, "nomadapp", rel.Version, "web.1")
	if body := get(t, web[0].Addr, "/"); body != "first" {
		t.Fatalf("web.1 answers %q", body)
	}
	if web[0].Node == "" || web[0].Node != agents.NodeName {
		t.Fatalf("instance node %q, want the Nomad client %q", web[0].Node, agents.NodeName)
	}
	if _, err := cl.Scale(ctx, "nomadapp", api.ScaleRequest{Counts: map[string]int{"web": 2}}); err != nil {
		t.Fatal(err)
	}
	waitInstances(t, cl, "nomadapp", rel.Version, "web.1", "web.2")
	waitRouted(t, rt.HTTPAddr, "nomadapp.apps.test", "first")
	// Blue-green to the second image, with new config, under load through
	// the router: no request may fail.
	lctx, stopLoad := context.WithCancel(ctx)
	res, waitLoad := keepAliveLoad(lctx, 50, rt.HTTPAddr, "nomadapp.apps.test")
	if _, err := cl.UpdateConfig(ctx, "nomadapp", api.ConfigUpdateRequest{Set: map[string]string{"BODY": "second"}}); err != nil {
		t.Fatal(err)
	}
	rel2, err := cl.DeployImage(ctx, "nomadapp", api.ImageDeployRequest{Image: tags[1]})
	if err != nil {
		t.Fatalf("second deploy on nomad: %v", err)
	}
	web = waitInstances(t, cl, "nomadapp", rel2.Version, "web.1", "web.2")
	if body := get(t, web[0].Addr, "/"); body != "second" {
		t.Fatalf("after the blue-green deploy web.1 answers %q", body)
	}
	waitDeploy(t, cl, "nomadapp", rel2.Version, "done")
	waitRouted(t, rt.HTTPAddr, "nomadapp.apps.test", "second")
	stopLoad()
	waitLoad()
	t.Logf("through the nomad blue-green deploy: %d requests ok, %d failed", res.ok.Load(), res.failed.Load())
	if res.failed.Load() != 0 || res.ok.Load() == 0 {
		t.Fatalf("%d requests failed during the deploy (%d ok): %v", res.failed.Load(), res.ok.Load(), res.errs)
	}
	deps, _, _ := cl.Deploys(ctx, "nomadapp", nil)
	if len(deps) == 0 || deps[0].To != rel2.Version || deps[0].State != "done" {
		t.Fatalf("deploys: %+v", deps)
	}
}

// TestNomadLeaderFailoverMidDeploy kills the berth leader while a deploy on
// Nomad waits for a slow-starting release; the next leader finishes it.
func TestNomadLeaderFailoverMidDeploy(t *testing.T) {
	requireDocker(t)
	agents := nomadtest.Start(t)
	c := startCluster(t, 3, harness.Options{Builds: true, Stack: testStack, Runtime: "nomad",
		Nomad: map[string]any{"addr": agents.NomadAddr, "consul_addr": agents.ConsulAddr}})
	ctx := ctxT(t, 10*time.Minute)
	leader, err := c.WaitLeader(ctx, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client(follower(c, leader))
	tags := buildTinyImages(t, "berth-e2e/nomad-slow-"+strings.ToLower(filepath.Base(c.Dir)), 1)
	if _, err := cl.CreateApp(ctx, "slownomad"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UpdateConfig(ctx, "slownomad", api.ConfigUpdateRequest{Set: map[string]string{"BODY": "slow", "DELAY": "8s"}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := cl.DeployImage(ctx, "slownomad", api.ImageDeployRequest{Image: tags[0]})
		done <- err
	}()
	waitDeploy(t, cl, "slownomad", 1, "starting")
	c.Kill(leader)
	if err := <-done; err != nil {
		t.Fatalf("deploy through a follower while the leader died: %v", err)
	}
	waitDeploy(t, cl, "slownomad", 1, "done")
	web := waitInstances(t, cl, "slownomad", 1, "web.1")
	if body := get(t, web[0].Addr, "/"); body != "slow" {
		t.Fatalf("web.1 answers %q", body)
	}
}
