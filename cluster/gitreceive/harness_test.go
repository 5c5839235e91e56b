package gitreceive

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// testEnv is a running server with a fake Auth and Pipeline, a registered
// key for caller "alice" (who may push to "web"), and helpers to drive the
// real git and ssh clients against it.
type testEnv struct {
	t        *testing.T
	srv      *Server
	cfg      Config
	auth     *fakeAuth
	pipe     *fakePipeline
	root     string // everything of this test lives here
	reposDir string
	home     string // HOME of the git and ssh clients
	key      string // alice's private key
	port     string
}

func newTestEnv(t *testing.T, opts ...func(*Config)) *testEnv {
	t.Helper()
	root := t.TempDir()
	e := &testEnv{
		t:        t,
		auth:     newFakeAuth(),
		pipe:     newFakePipeline(),
		root:     root,
		reposDir: filepath.Join(root, "data", "repos"),
		home:     filepath.Join(root, "home"),
	}
	if err := os.MkdirAll(e.home, 0o700); err != nil {
		t.Fatal(err)
	}
	var pub gossh.PublicKey
	e.key, pub = e.newKey("alice")
	e.auth.addKey(pub, "alice")
	e.auth.addApp("web", "alice")
	e.cfg = Config{
		Bind:        "127.0.0.1:0",
		HostKeyPath: filepath.Join(root, "data", "host_key"),
		ReposDir:    e.reposDir,
		Auth:        e.auth,
		Pipeline:    e.pipe,
		Logger:      testLogger(t),
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.start()
	return e
}

func (e *testEnv) start() {
	e.t.Helper()
	srv, err := New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			e.t.Errorf("stop: %v", err)
		}
	})
	e.srv = srv
	_, e.port, _ = net.SplitHostPort(srv.Addr())
}

// newKey makes an ed25519 key pair with ssh-keygen.
func (e *testEnv) newKey(name string) (string, gossh.PublicKey) {
	e.t.Helper()
	path := filepath.Join(e.root, "keys", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path).CombinedOutput(); err != nil {
		e.t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		e.t.Fatal(err)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(b)
	if err != nil {
		e.t.Fatal(err)
	}
	return path, pub
}

func (e *testEnv) sshArgs(key string) []string {
	return []string{"-i", key, "-p", e.port,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"}
}

// clientEnv is the environment of the git and ssh clients: nothing of the
// user's configuration leaks in.
func (e *testEnv) clientEnv(key string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.home,
		"LANG=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_SSH_COMMAND=ssh " + strings.Join(e.sshArgs(key), " "),
	}
}

// result is a finished client command.
type result struct {
	stdout, stderr string
	err            error
}

func (r result) String() string {
	return fmt.Sprintf("err=%v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
}

// gitCmd prepares git with args in dir as a client using key.
func (e *testEnv) gitCmd(ctx context.Context, dir, key string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = e.clientEnv(key)
	return cmd
}

func run(cmd *exec.Cmd) result {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return result{stdout.String(), stderr.String(), err}
}

// git runs git and returns its output; it fails the test only on timeout.
func (e *testEnv) git(dir, key string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := run(e.gitCmd(ctx, dir, key, args...))
	if ctx.Err() != nil {
		e.t.Fatalf("git %v timed out: %v", args, r)
	}
	return r
}

// mustGit runs git and fails the test if it fails.
func (e *testEnv) mustGit(dir string, args ...string) string {
	e.t.Helper()
	r := e.git(dir, e.key, args...)
	if r.err != nil {
		e.t.Fatalf("git %v: %v", args, r)
	}
	return strings.TrimSpace(r.stdout)
}

// ssh runs the ssh client with a remote command ("" for none: a shell).
func (e *testEnv) ssh(key string, extra []string, command string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(e.sshArgs(key), extra...)
	args = append(args, "git@127.0.0.1")
	if command != "" {
		args = append(args, command)
	}
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Env = e.clientEnv(key)
	cmd.Stdin = strings.NewReader("")
	return run(cmd)
}

// remote is the URL of app's repository.
func (e *testEnv) remote(app string) string {
	return fmt.Sprintf("ssh://git@127.0.0.1:%s/%s.git", e.port, app)
}

// workRepo makes a local repository on main with files committed and app's
// remote as "berth".
func (e *testEnv) workRepo(name, app string, files map[string]string) (dir, commit string) {
	e.t.Helper()
	dir = filepath.Join(e.root, "work", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	e.mustGit(dir, "init", "-q", "-b", "main")
	e.mustGit(dir, "remote", "add", "berth", e.remote(app))
	return dir, e.commit(dir, files)
}

// commit writes files in dir and commits them; it returns the commit.
func (e *testEnv) commit(dir string, files map[string]string) string {
	e.t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	e.mustGit(dir, "add", "-A")
	e.mustGit(dir, "commit", "-q", "--allow-empty", "-m", "change")
	return e.mustGit(dir, "rev-parse", "HEAD")
}

// bareRef is ref in app's bare repository, "" if it does not exist.
func (e *testEnv) bareRef(app, ref string) string {
	e.t.Helper()
	cmd := exec.Command("git", "--git-dir", filepath.Join(e.reposDir, app+".git"), "rev-parse", "--verify", "-q", ref)
	cmd.Env = e.clientEnv(e.key)
	out, _ := cmd.Output()
	return strings.TrimSpace(string(out))
}

// processesUsing lists the processes whose command line mentions s.
func processesUsing(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		found = append(found, ent.Name()+": "+string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	return found
}

// testLogger sends the server's log to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
