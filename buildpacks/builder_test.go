package buildpacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"
)

// Integration tests: they build the sample apps on the real Docker engine.
// Nothing can be pulled, so generated Dockerfiles build over a stack image
// made from Debian packages by scripts/build-test-stack.sh (run here when
// the image is missing; it needs root and a few minutes). Images get tags
// under testImagePrefix and are removed afterwards.

const (
	testStack       = "berth/test-stack:bookworm"
	testImagePrefix = "berth-test/"
	samplesDir      = "../e2e/testdata/apps"
)

// dockerClient connects to the engine, skipping the test only when there
// is no Docker socket at all.
func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	if sock, ok := strings.CutPrefix(host, "unix://"); host == "" || ok {
		if sock == "" {
			sock = "/var/run/docker.sock"
		}
		if _, err := os.Stat(sock); errors.Is(err, fs.ErrNotExist) {
			t.Skipf("no Docker socket at %s", sock)
		}
	}
	// The engine may be older than the client (20.10 speaks API 1.41).
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("the Docker socket exists but the engine does not answer: %v", err)
	}
	return cli
}

var (
	stackOnce sync.Once
	stackErr  error
)

// ensureStack makes sure the test stack image exists, building it once.
func ensureStack(t *testing.T, cli *client.Client) {
	t.Helper()
	stackOnce.Do(func() {
		ctx := context.Background()
		if _, err := cli.ImageInspect(ctx, testStack); err == nil {
			return
		}
		script, _ := filepath.Abs("../scripts/build-test-stack.sh")
		t.Logf("%s is missing: running %s (several minutes)", testStack, script)
		out, err := exec.Command(script).CombinedOutput()
		if err != nil {
			stackErr = fmt.Errorf("%s failed (it must run as root, with debootstrap reaching deb.debian.org): %v\n%s", script, err, out)
			return
		}
		if _, err := cli.ImageInspect(ctx, testStack); err != nil {
			stackErr = fmt.Errorf("%s succeeded but %s is still missing: %v\n%s", script, testStack, err, out)
		}
	})
	if stackErr != nil {
		t.Fatalf("the test stack image %s is needed: %v", testStack, stackErr)
	}
}

// syncBuffer collects output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildImage builds dir with plan under a unique test tag, removed when the
// test ends.
func buildImage(t *testing.T, cli *client.Client, dir string, plan *Plan, opts BuildOptions) (string, error) {
	t.Helper()
	opts.Tag = fmt.Sprintf("%s%s:%d", testImagePrefix, strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), opts.Tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	var log syncBuffer
	if opts.Log == nil {
		opts.Log = &log
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	id, err := NewBuilder(cli).Build(ctx, dir, plan, opts)
	if err != nil {
		t.Logf("build output:\n%s", log.String())
		return "", err
	}
	t.Logf("built %s (%s) in %s", opts.Tag, shortID(strings.TrimPrefix(id, "sha256:")), time.Since(start).Round(time.Second))
	return id, nil
}

// serve runs image with env, publishing port on a random port of
// 127.0.0.1, and returns its base URL; the container is removed when the
// test ends.
func serve(t *testing.T, cli *client.Client, img string, port string, env []string) string {
	t.Helper()
	ctx := context.Background()
	p := nat.Port(port + "/tcp")
	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: img, Env: append([]string{"PORT=" + port}, env...), ExposedPorts: nat.PortSet{p: {}}},
		&container.HostConfig{PortBindings: nat.PortMap{p: {{HostIP: "127.0.0.1", HostPort: ""}}}},
		nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true}); err == nil {
				out, _ := io.ReadAll(logs)
				logs.Close()
				t.Logf("container output:\n%s", out)
			}
		}
		_ = cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := cli.ContainerInspect(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	bindings := info.NetworkSettings.Ports[p]
	if len(bindings) == 0 {
		t.Fatalf("port %s is not published: %+v", p, info.NetworkSettings.Ports)
	}
	return "http://127.0.0.1:" + bindings[0].HostPort
}

// get polls url until it answers 200 or the deadline passes.
func get(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	c := &http.Client{Timeout: 5 * time.Second}
	var last string
	for {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body)
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s did not answer 200 within 60s; last: %s", url, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestBuildSamples(t *testing.T) {
	cli := dockerClient(t)
	ensureStack(t, cli)
	for _, kind := range []string{KindDockerfile, KindGo, KindNode, KindPython, KindStatic} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(samplesDir, kind)
			plan, err := Detect(dir, DetectOptions{Stack: testStack})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Kind != kind {
				t.Fatalf("Detect(%s) = %q", dir, plan.Kind)
			}
			id, err := buildImage(t, cli, dir, plan, BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A port other than the images' defaults: the app must use $PORT.
			base := serve(t, cli, id, "7123", []string{"BERTH_SAMPLE=value with spaces"})
			if body := get(t, base+"/"); !strings.Contains(body, "hello from "+kind) {
				t.Errorf("GET / = %q, want it to contain %q", body, "hello from "+kind)
			}
			if kind != KindStatic {
				if body := get(t, base+"/env/BERTH_SAMPLE"); body != "value with spaces" {
					t.Errorf("GET /env/BERTH_SAMPLE = %q", body)
				}
			}
			if kind == KindGo {
				testRun(t, cli, id, plan)
			}
		})
	}
}

// testRun checks one-off containers on the Go sample's image.
func testRun(t *testing.T, cli *client.Client, img string, plan *Plan) {
	b := NewBuilder(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	code, err := b.Run(ctx, img, "exit 3", nil, nil)
	if err != nil || code != 3 {
		t.Errorf("Run(exit 3) = %d, %v; want 3", code, err)
	}

	if plan.Procfile.Release != "echo release-ran" {
		t.Fatalf("release command = %q", plan.Procfile.Release)
	}
	var out syncBuffer
	code, err = b.Run(ctx, img, plan.Procfile.Release, nil, &out)
	if err != nil || code != 0 || out.String() != "release-ran\n" {
		t.Errorf("release: code %d, err %v, output %q", code, err, out.String())
	}

	// stderr is streamed too, env is passed, and the image runs unprivileged.
	out = syncBuffer{}
	code, err = b.Run(ctx, img, `echo "to stderr $GREETING" >&2; id -u`, []string{"GREETING=hi"}, &out)
	if err != nil || code != 0 || out.String() != "to stderr hi\n"+AppUID+"\n" {
		t.Errorf("code %d, err %v, output %q", code, err, out.String())
	}

	// The one-off containers are gone.
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Image == img && c.Labels["berth.one-off"] == "true" {
			t.Errorf("one-off container %s was not removed", c.ID)
		}
	}
}

func TestBuildFailingStep(t *testing.T) {
	cli := dockerClient(t)
	ensureStack(t, cli)
	dir := writeTree(t, map[string]string{
		"Dockerfile": "FROM " + testStack + "\nRUN echo first-step\nRUN echo about-to-fail && exit 1\nRUN echo never\n",
	})
	plan, err := Detect(dir, DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = buildImage(t, cli, dir, plan, BuildOptions{})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *BuildError", err)
	}
	for _, w := range []string{"Step 3/4 : RUN echo about-to-fail && exit 1", "non-zero code: 1", "about-to-fail"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q:\n%s", w, err)
		}
	}
	if strings.Contains(err.Error(), "never") {
		t.Errorf("error mentions a step after the failure:\n%s", err)
	}
}

// The build arguments reach a user's Dockerfile, and a generated
// Dockerfile trusts the extra CA certificates.
func TestBuildArgsAndCACerts(t *testing.T) {
	cli := dockerClient(t)
	ensureStack(t, cli)
	c1, c2 := testCertPEM(t), testCertPEM(t)
	opts := BuildOptions{
		CACerts: [][]byte{c1, c2},
		// Nothing is downloaded, so an unreachable proxy harms nothing.
		Proxy: map[string]string{"HTTP_PROXY": "http://proxy.invalid:3128", "no_proxy": "localhost"},
	}

	t.Run("dockerfile", func(t *testing.T) {
		t.Parallel()
		dir := writeTree(t, map[string]string{"Dockerfile": "FROM " + testStack + "\nARG BERTH_CA_CERTS\n" +
			`RUN test "$HTTP_PROXY" = http://proxy.invalid:3128 && test "$http_proxy" = http://proxy.invalid:3128 && ` +
			`test "$NO_PROXY" = localhost && test "$(printf '%s' "$BERTH_CA_CERTS" | grep -c 'BEGIN CERTIFICATE')" = 2` + "\n"})
		plan, err := Detect(dir, DetectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := buildImage(t, cli, dir, plan, opts); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("generated", func(t *testing.T) {
		t.Parallel()
		dir := writeTree(t, map[string]string{"index.html": "hi"})
		plan, err := Detect(dir, DetectOptions{Stack: testStack})
		if err != nil {
			t.Fatal(err)
		}
		id, err := buildImage(t, cli, dir, plan, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out syncBuffer
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		code, err := NewBuilder(cli).Run(ctx, id,
			`ls /etc/ssl/certs | grep '^berth-'; grep -c 'BEGIN CERTIFICATE' /usr/local/share/ca-certificates/berth/berth-2.crt; ls -A /app/public`,
			nil, &out)
		if err != nil || code != 0 {
			t.Fatalf("code %d, err %v, output %q", code, err, out.String())
		}
		// Two certificates, two files, both trusted; and berth's own files
		// stay out of the image.
		if want := "berth-1.pem\nberth-2.pem\n1\nindex.html\n"; out.String() != want {
			t.Errorf("output %q, want %q", out.String(), want)
		}
	})
}
