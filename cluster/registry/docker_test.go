package registry

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// These tests drive a real Docker engine: docker build, push, pull, run.
// Docker allows plain HTTP to registries in 127.0.0.0/8 without any
// configuration (`docker info`: Insecure Registries: 127.0.0.0/8), which is
// how an agent reaches its local mirror too.

var (
	appBinOnce sync.Once
	appBinDir  string
	appBin     string
	appBinErr  error
)

const appSource = `package main

import "os"

func main() { os.Stdout.WriteString("hello from a berth registry test\n") }
`

// needDocker skips the test when there is no Docker engine to talk to.
func needDocker(t *testing.T) {
	t.Helper()
	if h := os.Getenv("DOCKER_HOST"); h != "" && !strings.HasPrefix(h, "unix://") {
		return
	}
	sock := strings.TrimPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if sock == "" {
		sock = "/var/run/docker.sock"
	}
	if _, err := os.Stat(sock); err != nil {
		t.Skipf("no docker socket: %v", err)
	}
}

// docker runs the docker CLI and returns its stdout.
func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out), nil
}

// buildApp compiles a static hello-world once per test binary: the layer
// every test image shares.
func buildApp(t *testing.T) string {
	t.Helper()
	appBinOnce.Do(func() {
		if appBinDir, appBinErr = os.MkdirTemp("", "berth-registry-app-"); appBinErr != nil {
			return
		}
		src := filepath.Join(appBinDir, "main.go")
		if appBinErr = os.WriteFile(src, []byte(appSource), 0o600); appBinErr != nil {
			return
		}
		appBin = filepath.Join(appBinDir, "app")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", appBin, src)
		cmd.Dir = appBinDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			appBinErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	if appBinErr != nil {
		t.Fatal(appBinErr)
	}
	return appBin
}

// dockerImages builds and cleans up test images.
type dockerImages struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	ids map[string]bool
}

func newDockerImages(t *testing.T) *dockerImages {
	needDocker(t)
	d := &dockerImages{t: t, ctx: context.Background(), ids: map[string]bool{}}
	t.Cleanup(func() {
		var ids []string
		for id := range d.ids {
			ids = append(ids, id)
		}
		if len(ids) > 0 {
			// -f: also the tags and digest references that point at them.
			if _, err := docker(d.ctx, append([]string{"rmi", "-f"}, ids...)...); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	return d
}

// build makes a FROM scratch image of the shared app binary plus dataSize
// bytes of random data (so each image differs), tags it ref, and returns the
// image ID.
func (d *dockerImages) build(ref string, dataSize int) string {
	d.t.Helper()
	bin := buildApp(d.t)
	dir := d.t.TempDir()
	// A hard link keeps the binary's mtime, so the app layer is the same
	// blob in every image, as a base layer would be.
	if err := os.Link(bin, filepath.Join(dir, "app")); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), randomBytes(dataSize), 0o644); err != nil {
		d.t.Fatal(err)
	}
	df := "FROM scratch\nCOPY app /app\nCOPY data /data\nENTRYPOINT [\"/app\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		d.t.Fatal(err)
	}
	out, err := docker(d.ctx, "build", "-q", "-t", ref, dir)
	if err != nil {
		d.t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	d.mu.Lock()
	d.ids[id] = true
	d.mu.Unlock()
	return id
}

var pushedDigest = regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`)

// push pushes ref and returns the manifest digest docker reports.
func (d *dockerImages) push(ref string) string {
	d.t.Helper()
	out, err := docker(d.ctx, "push", ref)
	if err != nil {
		d.t.Fatal(err)
	}
	m := pushedDigest.FindStringSubmatch(out)
	if m == nil {
		d.t.Fatalf("no digest in docker push output:\n%s", out)
	}
	return m[1]
}

// forget removes an image from the engine, so that a pull must fetch it.
func (d *dockerImages) forget(id string) {
	d.t.Helper()
	if _, err := docker(d.ctx, "rmi", "-f", id); err != nil {
		d.t.Fatal(err)
	}
	if _, err := docker(d.ctx, "image", "inspect", id); err == nil {
		d.t.Fatalf("image %s still present after rmi", id)
	}
}

// pull pulls ref and records the image for cleanup.
func (d *dockerImages) pull(ref string) error {
	if _, err := docker(d.ctx, "pull", ref); err != nil {
		return err
	}
	out, err := docker(d.ctx, "image", "inspect", "-f", "{{.Id}}", ref)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.ids[strings.TrimSpace(out)] = true
	d.mu.Unlock()
	return nil
}

func TestDockerPushPull(t *testing.T) {
	imgs := newDockerImages(t)
	r := startRegistry(t)
	ctx := context.Background()
	ref := r.Addr() + "/test/app:v1"

	id := imgs.build(ref, 64<<10)
	dgst := imgs.push(ref)
	if ok, err := r.ManifestExists(ctx, "test/app", dgst); err != nil || !ok {
		t.Fatalf("ManifestExists after docker push = %v, %v", ok, err)
	}

	imgs.forget(id)
	byDigest := r.Addr() + "/test/app@" + dgst
	if err := imgs.pull(byDigest); err != nil {
		t.Fatalf("plain docker pull by digest: %v", err)
	}
	out, err := docker(ctx, "run", "--rm", byDigest)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "hello from a berth registry test") {
		t.Fatalf("pulled image printed %q", out)
	}
	// And by tag.
	imgs.forget(id)
	if err := imgs.pull(ref); err != nil {
		t.Fatalf("docker pull by tag: %v", err)
	}
}

func TestDockerCollect(t *testing.T) {
	imgs := newDockerImages(t)
	r := startRegistry(t)
	ctx := context.Background()
	repo := r.Addr() + "/test/app"

	var ids, digests []string
	for i := 1; i <= 3; i++ {
		ref := fmt.Sprintf("%s:v%d", repo, i)
		ids = append(ids, imgs.build(ref, 1<<20))
		digests = append(digests, imgs.push(ref))
	}
	before, err := r.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}

	st, err := r.Collect(ctx, map[string][]string{"test/app": {digests[2]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("collect: %+v", st)
	if st.ManifestsDeleted != 2 {
		t.Errorf("ManifestsDeleted = %d, want 2", st.ManifestsDeleted)
	}
	// v1 and v2: manifest, config and data layer each; the app layer is v3's too.
	if st.BlobsDeleted != 6 {
		t.Errorf("BlobsDeleted = %d, want 6", st.BlobsDeleted)
	}
	if st.BytesAfter >= st.BytesBefore || st.BytesBefore-st.BytesAfter < 2<<20 {
		t.Errorf("bytes %d -> %d: want at least 2 MiB (two data layers) less", st.BytesBefore, st.BytesAfter)
	}
	after, err := r.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}
	if after >= before {
		t.Errorf("DiskUsage %d -> %d, want it to shrink", before, after)
	}

	for _, id := range ids {
		imgs.forget(id)
	}
	for i, d := range digests[:2] {
		if err := imgs.pull(repo + "@" + d); err == nil {
			t.Errorf("v%d (%s) still pullable after Collect", i+1, d)
		}
		if ok, _ := r.ManifestExists(ctx, "test/app", d); ok {
			t.Errorf("v%d still exists", i+1)
		}
	}
	if err := imgs.pull(repo + "@" + digests[2]); err != nil {
		t.Fatalf("kept v3 not pullable: %v", err)
	}

	// Pushing after a Collect works, including the layer v3 shares.
	ref4 := repo + ":v4"
	id4 := imgs.build(ref4, 1<<20)
	d4 := imgs.push(ref4)
	imgs.forget(id4)
	if err := imgs.pull(repo + "@" + d4); err != nil {
		t.Fatalf("v4 pushed after Collect not pullable: %v", err)
	}
}

// TestDockerTwoRegistries: two registries in one process, on two dirs.
func TestDockerTwoRegistries(t *testing.T) {
	imgs := newDockerImages(t)
	a, b := startRegistry(t), startRegistry(t)
	ctx := context.Background()

	refA := a.Addr() + "/test/app:v1"
	id := imgs.build(refA, 64<<10)
	dA := imgs.push(refA)
	if ok, _ := b.ManifestExists(ctx, "test/app", dA); ok {
		t.Fatal("pushed to A, present in B")
	}
	refB := b.Addr() + "/test/app:v1"
	if _, err := docker(ctx, "tag", refA, refB); err != nil {
		t.Fatal(err)
	}
	dB := imgs.push(refB)
	if dA != dB {
		t.Fatalf("same image, digests %s (A) and %s (B)", dA, dB)
	}

	st, err := a.Collect(ctx, map[string][]string{"test/app": nil})
	if err != nil || st.ManifestsDeleted != 1 {
		t.Fatalf("Collect A: %+v %v", st, err)
	}
	imgs.forget(id)
	if err := imgs.pull(a.Addr() + "/test/app@" + dA); err == nil {
		t.Error("A still serves what its Collect deleted")
	}
	if err := imgs.pull(b.Addr() + "/test/app@" + dB); err != nil {
		t.Errorf("B lost its image to A's Collect: %v", err)
	}
}
