package gitreceive

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

func TestUnknownKeyIsRefused(t *testing.T) {
	e := newTestEnv(t)
	dir, _ := e.workRepo("w", "web", map[string]string{"a": "1"})
	strangerKey, _ := e.newKey("stranger")
	r := e.git(dir, strangerKey, "push", "berth", "main")
	if r.err == nil || !strings.Contains(r.stderr, "Permission denied (publickey)") {
		t.Errorf("push with an unregistered key: %v", r)
	}
	if calls := e.auth.authorizeCalls(); len(calls) != 0 {
		t.Errorf("Authorize was called for an unauthenticated client: %v", calls)
	}
	if _, err := os.Stat(e.reposDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("repos dir exists after a refused push: %v", err)
	}
}

func TestAuthorizeErrorIsShown(t *testing.T) {
	e := newTestEnv(t)
	bobKey, bobPub := e.newKey("bob")
	e.auth.addKey(bobPub, "bob")
	e.auth.addApp("api", "alice")
	for _, tc := range []struct{ key, app, want string }{
		{bobKey, "web", "berth: bob has no deploy right on web"},
		{e.key, "nope", "berth: app nope does not exist"},
	} {
		dir, _ := e.workRepo(tc.app+filepath.Base(tc.key), tc.app, map[string]string{"a": "1"})
		r := e.git(dir, tc.key, "push", "berth", "main")
		if r.err == nil || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("push to %s: want %q in: %v", tc.app, tc.want, r)
		}
		if _, err := os.Stat(filepath.Join(e.reposDir, tc.app+".git")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("repository of %s created for a refused push: %v", tc.app, err)
		}
	}
	if n := len(e.pipe.seen()); n != 0 {
		t.Errorf("pipeline ran %d times", n)
	}
}

// TestBadRepositoryPathsAreRefused: hostile repository arguments never
// reach Authorize, the file system or a shell.
func TestBadRepositoryPathsAreRefused(t *testing.T) {
	e := newTestEnv(t)
	marker := filepath.Join(e.root, "pwned")
	for _, cmd := range []string{
		"git-receive-pack '../etc.git'",
		"git-receive-pack '../../../../tmp/x.git'",
		"git-receive-pack 'web;id.git'",
		"git-receive-pack 'Web.git'",
		"git-receive-pack 'a b.git'",
		"git-receive-pack 'web.git' extra",
		"git-receive-pack web.git extra",
		"git-receive-pack 'web.git'; touch " + marker,
		"git-receive-pack '$(touch " + marker + ")'",
		"git-receive-pack '`touch " + marker + "`.git'",
		"git-receive-pack 'web.git\n'",
		"git-receive-pack '/srv/git/web.git'",
		"git-receive-pack ''",
		"git-receive-pack",
		"git-upload-pack '../etc'",
		"git-upload-archive 'web.git'",
		"git-receive-pack --help",
		"git receive-pack '-c core.sshCommand=touch'",
	} {
		r := e.ssh(e.key, nil, cmd)
		t.Logf("%q: %s", cmd, strings.TrimSpace(r.stderr))
		if r.err == nil || !strings.Contains(r.stderr, "berth: ") {
			t.Errorf("%q was not refused with a message: %v", cmd, r)
		}
	}
	// git itself, with hostile remote paths.
	dir, _ := e.workRepo("w", "web", map[string]string{"a": "1"})
	for _, path := range []string{"../etc.git", "web;id.git", "Web.git", "a%20b.git"} {
		url := "ssh://git@127.0.0.1:" + e.port + "/" + path
		if r := e.git(dir, e.key, "push", url, "main"); r.err == nil || !strings.Contains(r.stderr, "berth: ") {
			t.Errorf("push to %s: %v", url, r)
		}
	}

	if calls := e.auth.authorizeCalls(); len(calls) != 0 {
		t.Errorf("Authorize was reached for %v", calls)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a command in the repository argument ran")
	}
	if _, err := os.Stat(e.reposDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the repos dir was created: %v", err)
	}
	// Nothing new beside the test's own directories.
	entries, _ := os.ReadDir(e.root)
	var names []string
	for _, ent := range entries {
		names = append(names, ent.Name())
	}
	if want := []string{"data", "home", "keys", "work"}; !slices.Equal(names, want) {
		t.Errorf("test root holds %v, want %v", names, want)
	}
	data, _ := os.ReadDir(filepath.Join(e.root, "data"))
	if len(data) != 1 || data[0].Name() != "host_key" {
		t.Errorf("data dir holds %v, want only the host key", data)
	}
}

func TestShellsAndOtherCommandsAreRefused(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		name   string
		extra  []string
		cmd    string
		status int
		want   string
	}{
		{"shell", nil, "", 1, "berth: interactive shells are not available"},
		// ssh -tt gives up when the pty is refused (status 255).
		{"shell with pty", []string{"-tt"}, "", 255, "PTY allocation request failed"},
		{"ls", nil, "ls", 1, "berth: this server only runs git-receive-pack and git-upload-pack"},
		{"sh -c", nil, "sh -c id", 1, "berth: this server only runs"},
		{"sftp subsystem", []string{"-s"}, "sftp", 1, "berth: subsystems (sftp, ...) are not available"},
	} {
		r := e.ssh(e.key, tc.extra, tc.cmd)
		var exit interface{ ExitCode() int }
		if !errors.As(r.err, &exit) || exit.ExitCode() != tc.status || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: want exit %d and %q: %v", tc.name, tc.status, tc.want, r)
		}
	}
}

// TestSessionRequestsAreRefused drives the protocol directly: env
// smuggling, ptys, X11, agent and port forwarding are all refused.
func TestSessionRequestsAreRefused(t *testing.T) {
	e := newTestEnv(t)
	b, err := os.ReadFile(e.key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	client, err := gossh.Dial("tcp", e.srv.Addr(), &gossh.ClientConfig{
		User:            "git",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	for _, kv := range [][2]string{{"LD_PRELOAD", "/tmp/x.so"}, {"GIT_DIR", "/etc"}, {"PATH", "/tmp"},
		{"GIT_PROTOCOL", "version=2:evil"}, {"BERTH_HOOK_BINARY", "/bin/sh"}} {
		if err := sess.Setenv(kv[0], kv[1]); err == nil {
			t.Errorf("env %s=%s accepted", kv[0], kv[1])
		}
	}
	if err := sess.Setenv("GIT_PROTOCOL", "version=2"); err != nil {
		t.Errorf("GIT_PROTOCOL=version=2 refused: %v", err)
	}
	if err := sess.RequestPty("xterm", 40, 80, gossh.TerminalModes{}); err == nil {
		t.Error("pty accepted")
	}
	for _, req := range []string{"x11-req", "auth-agent-req@openssh.com"} {
		if ok, err := sess.SendRequest(req, true, nil); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v", req, ok, err)
		}
	}
	if _, err := client.Dial("tcp", "127.0.0.1:22"); err == nil {
		t.Error("direct-tcpip (local port forwarding) accepted")
	}
	if _, err := client.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("tcpip-forward (remote port forwarding) accepted")
	}
	if _, _, err := client.OpenChannel("x11", nil); err == nil {
		t.Error("x11 channel accepted")
	}
	// After all that the session still runs nothing but git.
	var stderr strings.Builder
	sess.Stderr = &stderr
	err = sess.Run("id")
	var exit *gossh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(stderr.String(), "berth: ") {
		t.Errorf("exec id: %v, stderr %q", err, stderr.String())
	}
}
