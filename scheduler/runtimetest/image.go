package runtimetest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// testAppPackage is the suite's app, built static for the image.
const testAppPackage = "github.com/berthpaas/berth/scheduler/runtimetest/testapp"

// dockerfile puts the test app into an empty image twice: as the
// entrypoint, and as /bin/sh, a stand-in shell that runs Procfile-style
// commands (`/bin/sh -c "testapp worker"`) by splitting them into words.
// Runtimes run Process.Command through /bin/sh -c, and no real shell is
// available offline; see the testapp package.
const dockerfile = `FROM scratch
COPY testapp /testapp
COPY testapp /bin/sh
ENTRYPOINT ["/testapp"]
`

// BuildTestImage builds the test app (a static Go binary, see
// scheduler/runtimetest/testapp) into an image FROM scratch on the local
// Docker engine (DOCKER_HOST or the default socket), tagged tag. The image
// is removed when t's test ends. Runtimes whose nodes cannot see the local
// engine's images push the tag to a registry they can pull from.
func BuildTestImage(t *testing.T, tag string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "testapp")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, testAppPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the test app: %v\n%s", err, out)
	}
	app, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"testapp", 0o755, app}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}

	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			t.Logf("remove test image %s: %v", tag, err)
		}
		cli.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := cli.ImageBuild(ctx, &ctxTar, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1, // BuildKit needs a session; nothing here needs BuildKit
	})
	if err != nil {
		t.Fatalf("build the test image: %v", err)
	}
	defer resp.Body.Close()
	var tail []string
	dec := json.NewDecoder(resp.Body)
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("build the test image: read the engine's output: %v", err)
		}
		if s := strings.TrimSpace(m.Stream); s != "" {
			tail = append(tail, s)
		}
		if m.Error != "" {
			t.Fatalf("build the test image: %s\n%s", m.Error, strings.Join(tail, "\n"))
		}
	}
}
