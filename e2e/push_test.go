package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
	"github.com/berthpaas/berth/internal/wait"
)

// testStack is the buildpack base image the tests build locally (see
// scripts/build-test-stack.sh): no image can be pulled on test machines.
const testStack = "berth/test-stack:bookworm"

func requireDocker(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		t.Skip("no Docker engine on this machine")
	}
	if err := exec.Command("docker", "image", "inspect", testStack).Run(); err != nil {
		t.Fatalf("the test stack image %s is missing: run scripts/build-test-stack.sh (make test does)", testStack)
	}
}

// newBuildCluster starts one server with builds, registry and git on.
func newBuildCluster(t *testing.T, build map[string]any) *harness.Cluster {
	t.Helper()
	requireDocker(t)
	return startCluster(t, 1, harness.Options{Builds: true, Stack: testStack, Build: build, Runtime: "docker"})
}

// pusher is a developer's checkout with an SSH key registered in berth.
type pusher struct {
	t    *testing.T
	dir  string
	key  string
	home string
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// newKey makes an ed25519 key pair and registers it with token's client.
func newKey(t *testing.T, cl *api.Client, name string) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "id_ed25519")
	run(t, "", nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key)
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if cl != nil {
		if _, err := cl.AddKey(context.Background(), api.KeyAddRequest{Name: name, PublicKey: string(pub)}); err != nil {
			t.Fatal(err)
		}
	}
	return key
}

// newPusher makes a git repository from a sample app with a "berth" remote
// for app on server 0 of c, pushing with key.
func newPusher(t *testing.T, c *harness.Cluster, app, sample, key string) *pusher {
	t.Helper()
	p := &pusher{t: t, dir: t.TempDir(), key: key, home: t.TempDir()}
	if sample != "" {
		copyDir(t, filepath.Join("testdata", "apps", sample), p.dir)
	}
	p.git("init", "-q", "-b", "main")
	p.git("remote", "add", "berth", "ssh://git@"+c.Servers[0].GitAddr+"/"+app+".git")
	if sample != "" {
		p.commit("initial " + sample)
	}
	return p
}

func (p *pusher) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.home,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_SSH_COMMAND=ssh -i " + p.key + " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR"}
}

func (p *pusher) git(args ...string) string { return run(p.t, p.dir, p.env(), "git", args...) }

func (p *pusher) commit(msg string) string {
	p.git("add", "-A")
	p.git("commit", "-q", "--allow-empty", "-m", msg)
	return strings.TrimSpace(p.git("rev-parse", "HEAD"))
}

func (p *pusher) write(name, content string) {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// push runs git push and returns its combined output and whether it succeeded.
func (p *pusher) push(refspec string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "push", "berth", refspec)
	cmd.Dir, cmd.Env = p.dir, p.env()
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func (p *pusher) mustPush(refspec string) string {
	p.t.Helper()
	out, ok := p.push(refspec)
	if !ok {
		p.t.Fatalf("git push %s failed:\n%s", refspec, out)
	}
	return out
}

func (p *pusher) mustFail(refspec, want string) string {
	p.t.Helper()
	out, ok := p.push(refspec)
	if ok {
		p.t.Fatalf("git push %s succeeded; want it rejected with %q:\n%s", refspec, want, out)
	}
	if !strings.Contains(out, want) {
		p.t.Fatalf("git push %s output lacks %q:\n%s", refspec, want, out)
	}
	return out
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// serveImage runs image on the local engine with PORT=5000 published on
// loopback and returns GET path's body.
func serveImage(t *testing.T, image, path string, env ...string) string {
	t.Helper()
	args := []string{"run", "-d", "--rm", "-p", "127.0.0.1::5000", "-e", "PORT=5000"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	id := strings.TrimSpace(run(t, "", nil, "docker", append(args, image)...))
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	port := strings.TrimSpace(run(t, "", nil, "docker", "port", id, "5000/tcp"))
	if i := strings.LastIndex(port, "\n"); i >= 0 {
		port = port[:i]
	}
	var body string
	err := wait.For(context.Background(), image+" to answer on "+port, 30*time.Second, 200*time.Millisecond, func(ctx context.Context) error {
		resp, err := http.Get("http://" + port + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		body = string(b)
		return nil
	})
	if err != nil {
		logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
		t.Fatalf("%v\ncontainer logs:\n%s", err, logs)
	}
	return body
}

func latest(t *testing.T, cl *api.Client, app string) *api.Release {
	t.Helper()
	rels, _, err := cl.Releases(context.Background(), app, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rels) == 0 {
		return nil
	}
	return &rels[0]
}

func TestGitPushBuildsEveryKindOfApp(t *testing.T) {
	c := newBuildCluster(t, nil)
	cl := c.Client(0)
	ctx := ctxT(t, 15*time.Minute)
	key := newKey(t, cl, "laptop")
	for _, kind := range []string{"dockerfile", "go", "node", "python", "static"} {
		t.Run(kind, func(t *testing.T) {
			app := kind + "-app"
			if _, err := cl.CreateApp(ctx, app); err != nil {
				t.Fatal(err)
			}
			p := newPusher(t, c, app, kind, key)
			commit := strings.TrimSpace(p.git("rev-parse", "HEAD"))
			out := p.mustPush("main")
			for _, want := range []string{"remote: -----> berth: building " + app, "Released v1"} {
				if !strings.Contains(out, want) {
					t.Fatalf("push output lacks %q:\n%s", want, out)
				}
			}
			rel := latest(t, cl, app)
			if rel == nil || rel.Version != 1 || rel.Commit != commit || !strings.HasPrefix(rel.Digest, "sha256:") || !strings.Contains(rel.Image, "@"+rel.Digest) {
				t.Fatalf("release after push: %+v", rel)
			}
			// The release's image, by digest, comes out of the registry with
			// a plain docker pull and serves the app.
			exec.Command("docker", "rmi", "-f", rel.Image).Run()
			run(t, "", nil, "docker", "pull", "-q", rel.Image)
			t.Cleanup(func() { exec.Command("docker", "rmi", "-f", rel.Image).Run() })
			if body := serveImage(t, rel.Image, "/"); !strings.Contains(body, kind) {
				t.Fatalf("%s app answers %q; want it to mention %q", kind, body, kind)
			}
			builds, _, err := cl.Builds(ctx, app, nil)
			if err != nil || len(builds) != 1 || builds[0].Status != "succeeded" || builds[0].Release != 1 {
				t.Fatalf("builds: %+v %v", builds, err)
			}
			b, err := cl.Build(ctx, app, builds[0].ID)
			if err != nil || !strings.Contains(b.Output, "Released v1") {
				t.Fatalf("build output: %v %v", b, err)
			}
		})
	}
}

func TestReleasesAndRollbackRestoreImageAndConfig(t *testing.T) {
	c := newBuildCluster(t, nil)
	cl := c.Client(0)
	ctx := ctxT(t, 10*time.Minute)
	if _, err := cl.CreateApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UpdateConfig(ctx, "web", api.ConfigUpdateRequest{Set: map[string]string{"GREETING": "one"}}); err != nil {
		t.Fatal(err)
	}
	if rel := latest(t, cl, "web"); rel != nil {
		t.Fatalf("config change before the first deploy made release %+v", rel)
	}
	// The CLI registers the key and sets up the remote.
	cli := newCLI(t, c.Servers[0].APIAddr, c.RootToken)
	key := newKey(t, nil, "k")
	if out := cli.ok("keys", "add", key+".pub"); !strings.Contains(out, "Added key k (SHA256:") {
		t.Fatalf("berth keys add: %s", out)
	}
	cli.fails("already registered", "keys", "add", "--name", "again", key+".pub")
	p := newPusher(t, c, "web", "go", key)
	p.git("remote", "remove", "berth")
	cli.dir = p.dir
	cli.ok("git", "remote", "-a", "web")
	if url := strings.TrimSpace(p.git("remote", "get-url", "berth")); url != "ssh://git@"+c.Servers[0].GitAddr+"/web.git" {
		t.Fatalf("berth git remote set %q", url)
	}
	out := p.mustPush("main")
	if !strings.Contains(out, "release-ran") {
		t.Fatalf("the Procfile release command did not run:\n%s", out)
	}
	v1 := latest(t, cl, "web")
	p.write("VERSION", "2")
	p.commit("second")
	p.mustPush("main")
	v2 := latest(t, cl, "web")
	if v2.Version != 2 || v2.Digest == v1.Digest {
		t.Fatalf("second push: %+v", v2)
	}
	if _, err := cl.UpdateConfig(ctx, "web", api.ConfigUpdateRequest{Set: map[string]string{"GREETING": "two"}}); err != nil {
		t.Fatal(err)
	}
	v3 := latest(t, cl, "web")
	if v3.Version != 3 || v3.Kind != "config" || v3.Digest != v2.Digest {
		t.Fatalf("config change should release v3 with v2's image: %+v", v3)
	}
	// Default rollback: the previous release (v2: its image, GREETING=one).
	r4, err := cl.Rollback(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	full, _, err := cl.Release(ctx, "web", r4.Version, nil)
	if err != nil || full.Version != 4 || full.Digest != v2.Digest || full.Config["GREETING"] != "one" {
		t.Fatalf("rollback release = %+v %v", full, err)
	}
	cfg, _, _ := cl.Config(ctx, "web", nil)
	if cfg.Values["GREETING"] != "one" {
		t.Fatalf("rollback did not restore the config: %v", cfg.Values)
	}
	// Roll back to v1 by number: v1's image answers with v1's config.
	r5, err := cl.Rollback(ctx, "web", 1)
	if err != nil || r5.Digest != v1.Digest || r5.Version != 5 {
		t.Fatalf("rollback to v1 = %+v %v", r5, err)
	}
	if _, err := cl.Rollback(ctx, "web", 42); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("rollback to a missing release = %v, want not_found", err)
	}
	// The CLI's view.
	if out := cli.ok("releases", "-a", "web"); !strings.Contains(out, "v5") || !strings.Contains(out, "Rollback to v1") {
		t.Fatalf("berth releases:\n%s", out)
	}
	if out := cli.ok("releases", "info", "-a", "web", "v3"); !strings.Contains(out, "Set GREETING config vars") {
		t.Fatalf("berth releases info:\n%s", out)
	}
}

func TestPushBadInputRejectsAndKeepsTheLastRelease(t *testing.T) {
	c := newBuildCluster(t, map[string]any{"max_push_bytes": 512 << 10})
	cl := c.Client(0)
	ctx := ctxT(t, 15*time.Minute)
	if _, err := cl.CreateApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	key := newKey(t, cl, "dev")
	p := newPusher(t, c, "web", "go", key)
	p.mustPush("main")
	good := latest(t, cl, "web")
	goodRef := strings.Fields(p.git("ls-remote", "berth", "refs/heads/main"))[0]

	// Each case starts from the good tree, breaks it, and must be refused
	// without a release or a moved branch.
	cases := []struct {
		name    string
		breakIt func()
		want    string
	}{
		{"no buildpack matches", func() {
			for _, f := range []string{"go.mod", "main.go", "Procfile"} {
				os.Remove(filepath.Join(p.dir, f))
			}
			p.write("README", "nothing to build")
		}, "no Dockerfile, go.mod"},
		{"malformed Procfile", func() { p.write("Procfile", "web: ./app\nthis line is wrong\n") }, "Procfile"},
		{"failing Dockerfile", func() { p.write("Dockerfile", "FROM "+testStack+"\nRUN echo about to fail && exit 1\n") }, "exit"},
		{"symlink out of the repository", func() {
			os.Symlink("/etc/passwd", filepath.Join(p.dir, "leak"))
		}, "leak"},
		{"release command fails", func() { p.write("Procfile", "web: ./app\nrelease: exit 1\n") }, "release command"},
		{"push over the size limit", func() {
			b := make([]byte, 2<<20)
			rand.Read(b)
			p.write("blob.bin", string(b))
		}, "size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.git("checkout", "-q", "main")
			p.git("reset", "-q", "--hard", goodRef)
			p.git("clean", "-qfdx")
			tc.breakIt()
			p.commit(tc.name)
			p.mustFail("main", tc.want)
			if rel := latest(t, cl, "web"); rel.Version != good.Version {
				t.Fatalf("a rejected push made release v%d", rel.Version)
			}
			if ref := strings.Fields(p.git("ls-remote", "berth", "refs/heads/main"))[0]; ref != goodRef {
				t.Fatalf("a rejected push moved main to %s", ref)
			}
		})
	}
	p.git("reset", "-q", "--hard", goodRef)
	p.git("clean", "-qfdx")

	t.Run("another branch is stored, not deployed", func(t *testing.T) {
		p.git("checkout", "-q", "-b", "feature")
		p.write("FEATURE", "x")
		p.commit("feature")
		out := p.mustPush("feature")
		if !strings.Contains(out, "not deployed") {
			t.Fatalf("push of a feature branch:\n%s", out)
		}
		if rel := latest(t, cl, "web"); rel.Version != good.Version {
			t.Fatalf("a feature branch made release v%d", rel.Version)
		}
		p.git("checkout", "-q", "main")
	})
	t.Run("unknown app", func(t *testing.T) {
		q := newPusher(t, c, "nope", "go", key)
		q.mustFail("main", "no app named nope")
	})
	t.Run("app name with shell metacharacters", func(t *testing.T) {
		q := newPusher(t, c, "web", "", key)
		q.git("remote", "set-url", "berth", "ssh://git@"+c.Servers[0].GitAddr+"/web;touch${IFS}pwned.git")
		q.write("x", "x")
		q.commit("x")
		q.mustFail("main", "")
		if _, err := os.Stat(filepath.Join(q.dir, "pwned")); err == nil {
			t.Fatal("a shell ran the app name")
		}
	})
	t.Run("unregistered key", func(t *testing.T) {
		q := newPusher(t, c, "web", "go", newKey(t, nil, "stranger"))
		q.mustFail("main", "")
	})
	t.Run("key of a token without deploy rights", func(t *testing.T) {
		tok, err := cl.CreateToken(ctx, api.TokenCreateRequest{Name: "ro", Role: api.RoleViewer})
		if err != nil {
			t.Fatal(err)
		}
		q := newPusher(t, c, "web", "go", newKey(t, cl.WithToken(tok.Secret), "ro-key"))
		q.mustFail("main", "may not deploy web")
	})
	if rel := latest(t, cl, "web"); rel.Version != good.Version {
		t.Fatalf("after all bad pushes the latest release is v%d, want v%d", rel.Version, good.Version)
	}
	builds, _, _ := cl.Builds(ctx, "web", nil)
	failed := 0
	for _, b := range builds {
		if b.Status == "failed" {
			failed++
			if b.Error == "" {
				t.Errorf("failed build %s has no reason", b.ID)
			}
		}
	}
	if failed < 4 {
		t.Fatalf("%d failed builds recorded, want at least 4", failed)
	}
}

func TestDeployCommandAndImageRetention(t *testing.T) {
	c := newBuildCluster(t, map[string]any{"retain_releases": 2})
	cl := c.Client(0)
	ctx := ctxT(t, 10*time.Minute)
	if _, err := cl.CreateApp(ctx, "img"); err != nil {
		t.Fatal(err)
	}
	// The imported images serve nothing: their web process needs no check.
	if err := cl.SetCheck(ctx, "img", "web", api.CheckRequest{Type: "none"}); err != nil {
		t.Fatal(err)
	}
	cli := newCLI(t, c.Servers[0].APIAddr, c.RootToken)
	// berth deploy DIR builds like a push.
	dir := t.TempDir()
	copyDir(t, filepath.Join("testdata", "apps", "static"), dir)
	_, errOut, code := cli.run("", "deploy", "-a", "img", dir)
	if code != 0 || !strings.Contains(errOut, "Released v1") {
		t.Fatalf("berth deploy DIR: exit %d\n%s", code, errOut)
	}
	// berth deploy --image imports images of the server's engine.
	for i := 2; i <= 4; i++ {
		tag := fmt.Sprintf("berth-e2e/retention:%d", i)
		build := exec.Command("docker", "build", "-q", "-t", tag, "-")
		build.Stdin = bytes.NewBufferString(fmt.Sprintf("FROM %s\nLABEL berth.e2e.n=%d\nCMD [\"sleep\", \"infinity\"]\n", testStack, i))
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("docker build: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
		cli.ok("deploy", "-a", "img", "--image", tag)
	}
	rels, _, err := cl.Releases(ctx, "img", nil)
	if err != nil || len(rels) != 4 || rels[0].Version != 4 {
		t.Fatalf("releases = %+v %v", rels, err)
	}
	// Only the last two releases keep their images.
	for _, r := range rels {
		pull := exec.Command("docker", "pull", "-q", r.Image)
		err := pull.Run()
		exec.Command("docker", "rmi", "-f", r.Image).Run()
		if kept := r.Version >= 3; kept != (err == nil) {
			t.Errorf("v%d pullable=%v, want %v", r.Version, err == nil, kept)
		}
	}
	if _, err := cl.Rollback(ctx, "img", 1); !api.IsCode(err, api.CodeConflict) || !strings.Contains(err.Error(), "no longer in the registry") {
		t.Fatalf("rollback to a collected image = %v, want a conflict saying why", err)
	}
	if _, err := cl.Rollback(ctx, "img", 3); err != nil {
		t.Fatalf("rollback to a kept image: %v", err)
	}
	if _, err := cl.DeployImage(ctx, "img", api.ImageDeployRequest{Image: "berth-e2e/does-not-exist:1"}); err == nil {
		t.Fatal("deploying a missing image succeeded")
	}
}
