package gitreceive

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
)

func TestPushToDeployBranchDeploys(t *testing.T) {
	e := newTestEnv(t)
	// Large enough that the tar cannot sit in socket buffers.
	big := make([]byte, 4<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"app.py": "print('hi')\n", "static/index.html": "<h1>web</h1>\n", "data/blob.bin": string(big)}
	dir, commit := e.workRepo("w", "web", files)

	r := e.git(dir, e.key, "push", "berth", "main")
	t.Logf("git push output:\n%s", r.stderr)
	if r.err != nil {
		t.Fatalf("push failed: %v", r)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != commit {
		t.Errorf("bare repo main = %q, want %q", got, commit)
	}
	for _, want := range []string{"remote: building web at " + commit[:7], "remote: deployed web"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("git's stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	deps := e.pipe.seen()
	if len(deps) != 1 {
		t.Fatalf("pipeline saw %d deploys, want 1", len(deps))
	}
	d := deps[0]
	if d.App != "web" || d.Branch != "main" || d.Commit != commit || d.Caller.Name != "alice" || d.Caller.KeyFingerprint == "" {
		t.Errorf("deploy request = %+v", d)
	}
	if d.TarErr != nil || !maps.Equal(d.Files, files) {
		t.Errorf("source tar has %v (err %v), want the commit's files %v", slices.Sorted(maps.Keys(d.Files)), d.TarErr, slices.Sorted(maps.Keys(files)))
	}

	// The installed hook is berth's fixed script.
	hook, err := os.ReadFile(filepath.Join(e.reposDir, "web.git", "hooks", "pre-receive"))
	if err != nil || string(hook) != preReceiveHook {
		t.Errorf("hook = %q, %v", hook, err)
	}

	// A second push deploys the new commit.
	commit2 := e.commit(dir, map[string]string{"app.py": "print('v2')\n"})
	if r := e.git(dir, e.key, "push", "berth", "main"); r.err != nil {
		t.Fatalf("second push failed: %v", r)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != commit2 {
		t.Errorf("bare repo main = %q, want %q", got, commit2)
	}
	if deps := e.pipe.seen(); len(deps) != 2 || deps[1].Files["app.py"] != "print('v2')\n" {
		t.Errorf("second deploy = %+v", deps[len(deps)-1])
	}
}

func TestFailedDeployRejectsPush(t *testing.T) {
	e := newTestEnv(t)
	dir, first := e.workRepo("w", "web", map[string]string{"a": "1"})
	if r := e.git(dir, e.key, "push", "berth", "main"); r.err != nil {
		t.Fatalf("first push: %v", r)
	}
	e.pipe.mu.Lock()
	e.pipe.fail = errors.New("build failed: no Dockerfile and no buildpack matched")
	e.pipe.mu.Unlock()
	e.commit(dir, map[string]string{"a": "2"})
	r := e.git(dir, e.key, "push", "berth", "main")
	t.Logf("git push output:\n%s", r.stderr)
	if r.err == nil {
		t.Fatalf("push of a failing deploy succeeded: %v", r)
	}
	for _, want := range []string{"build failed: no Dockerfile and no buildpack matched", "pre-receive hook declined"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if got := e.bareRef("web", "refs/heads/main"); got != first {
		t.Errorf("main = %q after a rejected push, want the previous %q", got, first)
	}
}

func TestPushToOtherBranchIsStoredNotDeployed(t *testing.T) {
	e := newTestEnv(t)
	dir, commit := e.workRepo("w", "web", map[string]string{"a": "1"})
	e.mustGit(dir, "checkout", "-q", "-b", "feature")
	r := e.git(dir, e.key, "push", "berth", "feature")
	if r.err != nil {
		t.Fatalf("push: %v", r)
	}
	if want := "remote: branch feature stored, not deployed (deploy branches: main, master)"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
	if got := e.bareRef("web", "refs/heads/feature"); got != commit {
		t.Errorf("feature = %q, want %q", got, commit)
	}
	if n := len(e.pipe.seen()); n != 0 {
		t.Errorf("pipeline ran %d times for a non-deploy branch", n)
	}
}

func TestDeletingDeployBranchIsRefused(t *testing.T) {
	e := newTestEnv(t)
	dir, commit := e.workRepo("w", "web", map[string]string{"a": "1"})
	if r := e.git(dir, e.key, "push", "berth", "main"); r.err != nil {
		t.Fatalf("push: %v", r)
	}
	r := e.git(dir, e.key, "push", "berth", ":main")
	if r.err == nil || !strings.Contains(r.stderr, "branch main deploys web and cannot be deleted") {
		t.Errorf("deleting main: %v", r)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != commit {
		t.Errorf("main = %q, want %q", got, commit)
	}
}

func TestPushOverSizeLimitIsRefused(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxPushBytes = 64 << 10 })
	dir, _ := e.workRepo("w", "web", map[string]string{"a": "1"})
	if r := e.git(dir, e.key, "push", "berth", "main"); r.err != nil {
		t.Fatalf("small push: %v", r)
	}
	before := e.bareRef("web", "refs/heads/main")
	big := make([]byte, 1<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	e.commit(dir, map[string]string{"big.bin": string(big)})
	r := e.git(dir, e.key, "push", "berth", "main")
	t.Logf("git push output:\n%s", r.stderr)
	if r.err == nil {
		t.Fatalf("a 1 MiB push passed a 64 KiB limit: %v", r)
	}
	if !strings.Contains(r.stderr, "pack exceeds maximum allowed size") && !strings.Contains(r.stderr, "larger than the limit of 64 KiB") {
		t.Errorf("stderr does not say the push is too large:\n%s", r.stderr)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != before {
		t.Errorf("main = %q after a refused push, want %q", got, before)
	}
	if n := len(e.pipe.seen()); n != 1 {
		t.Errorf("pipeline ran %d times, want 1 (only the small push)", n)
	}
}

func TestConcurrentPushToSameAppIsRefused(t *testing.T) {
	e := newTestEnv(t)
	e.pipe.block = make(chan struct{})
	dir1, commit1 := e.workRepo("one", "web", map[string]string{"a": "1"})
	dir2, commit2 := e.workRepo("two", "web", map[string]string{"a": "2"})

	first := make(chan result, 1)
	go func() { first <- e.git(dir1, e.key, "push", "berth", "main") }()
	select {
	case c := <-e.pipe.started:
		if c != commit1 {
			t.Fatalf("first deploy is of %s, want %s", c, commit1)
		}
	case r := <-first:
		t.Fatalf("first push ended before its deploy started: %v", r)
	case <-time.After(60 * time.Second):
		t.Fatal("first deploy did not start")
	}

	r := e.git(dir2, e.key, "push", "berth", "main")
	if r.err == nil || !strings.Contains(r.stderr, "a deploy of web is in progress; push again when it finishes") {
		t.Errorf("second push: %v", r)
	}
	close(e.pipe.block)
	if r := <-first; r.err != nil {
		t.Fatalf("first push: %v", r)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != commit1 {
		t.Errorf("main = %q, want the first push's %q (not %q)", got, commit1, commit2)
	}
}

func TestKilledPushCancelsDeploy(t *testing.T) {
	e := newTestEnv(t)
	e.pipe.block = make(chan struct{})
	defer close(e.pipe.block)
	dir, _ := e.workRepo("w", "web", map[string]string{"a": "1"})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := e.gitCmd(ctx, dir, e.key, "push", "berth", "main")
	// Like Ctrl-C in a terminal: the signal reaches git and its ssh.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.pipe.started:
	case <-time.After(60 * time.Second):
		t.Fatal("deploy did not start")
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	select {
	case cause := <-e.pipe.canceled:
		t.Logf("deploy canceled: %v", cause)
	case <-time.After(10 * time.Second):
		t.Fatal("the deploy's context was not canceled within 10s of killing git push")
	}
	if got := e.bareRef("web", "refs/heads/main"); got != "" {
		t.Errorf("main = %q after a killed push, want no ref", got)
	}
	// receive-pack, the hook and git archive are all gone.
	err := wait.For(context.Background(), "git processes of the killed push to exit", 10*time.Second, 50*time.Millisecond,
		func(context.Context) error {
			if ps := processesUsing(e.reposDir); len(ps) > 0 {
				return fmt.Errorf("still running: %q", ps)
			}
			return nil
		})
	if err != nil {
		t.Error(err)
	}
}

func TestCloneAndFetch(t *testing.T) {
	e := newTestEnv(t)
	dir, _ := e.workRepo("w", "web", map[string]string{"README": "hello\n"})
	if r := e.git(dir, e.key, "push", "berth", "main"); r.err != nil {
		t.Fatalf("push: %v", r)
	}
	clone := filepath.Join(e.root, "work", "clone")
	if r := e.git(e.root, e.key, "clone", "-q", e.remote("web"), clone); r.err != nil {
		t.Fatalf("clone: %v", r)
	}
	if b, err := os.ReadFile(filepath.Join(clone, "README")); err != nil || string(b) != "hello\n" {
		t.Errorf("cloned README = %q, %v", b, err)
	}
	commit2 := e.commit(dir, map[string]string{"README": "hello again\n"})
	if r := e.git(dir, e.key, "push", "berth", "main"); r.err != nil {
		t.Fatalf("push: %v", r)
	}
	if r := e.git(clone, e.key, "fetch", "-q", "origin"); r.err != nil {
		t.Fatalf("fetch: %v", r)
	}
	if got := e.mustGit(clone, "rev-parse", "origin/main"); got != commit2 {
		t.Errorf("fetched origin/main = %s, want %s", got, commit2)
	}

	// Someone without rights on web cannot clone it.
	bobKey, bobPub := e.newKey("bob")
	e.auth.addKey(bobPub, "bob")
	r := e.git(e.root, bobKey, "clone", "-q", e.remote("web"), filepath.Join(e.root, "work", "bob"))
	if r.err == nil || !strings.Contains(r.stderr, "bob has no deploy right on web") {
		t.Errorf("bob's clone: %v", r)
	}
}

// TestPushOverChannelLimitIsRefused: the server also counts the bytes on
// the SSH channel, which catches what git's pack limit does not see, here
// a push of 20,000 tags whose pack is tiny but whose ref commands are not.
func TestPushOverChannelLimitIsRefused(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MaxPushBytes = 64 << 10 })
	dir, commit := e.workRepo("w", "web", map[string]string{"a": "1"})
	// Written as packed refs: 20,000 loose ref files take seconds.
	var refs strings.Builder
	refs.WriteString("# pack-refs with: peeled fully-peeled sorted \n")
	for i := range 20000 {
		fmt.Fprintf(&refs, "%s refs/tags/release-%06d\n", commit, i)
	}
	if err := os.WriteFile(filepath.Join(dir, ".git", "packed-refs"), []byte(refs.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.git(dir, e.key, "push", "-q", "berth", "main", "--tags")
	if r.err == nil || !strings.Contains(r.stderr, "berth: push rejected: it is larger than the limit of 64 KiB") {
		t.Errorf("push of 20,000 tags: %v", r)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != "" {
		t.Errorf("main = %q after a refused push, want none", got)
	}
}

// TestDeployThatIgnoresSource: a Pipeline need not read the whole tar
// (or any of it); its result still decides the push.
func TestDeployThatIgnoresSource(t *testing.T) {
	e := newTestEnv(t)
	e.pipe.ignoreSource = true
	big := make([]byte, 2<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	dir, commit := e.workRepo("w", "web", map[string]string{"blob": string(big)})
	if r := e.git(dir, e.key, "push", "berth", "main"); r.err != nil || !strings.Contains(r.stderr, "remote: deployed web") {
		t.Fatalf("push: %v", r)
	}
	if got := e.bareRef("web", "refs/heads/main"); got != commit {
		t.Errorf("main = %q, want %q", got, commit)
	}
}
