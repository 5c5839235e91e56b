package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
)

// cli runs the berth binary with a clean environment: HOME and the config
// dir point into the test's temp dir, so no saved login leaks in.
type cli struct {
	t    *testing.T
	env  []string
	dir  string
	home string
}

func newCLI(t *testing.T, addr, token string) *cli {
	home := t.TempDir()
	return &cli{t: t, home: home, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"BERTH_ADDR=" + addr, "BERTH_TOKEN=" + token,
	}}
}

// run returns stdout, stderr and the exit code.
func (c *cli) run(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	// Generous: `berth deploy` builds an image on a slow machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("berth %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ok runs a command that must succeed.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run("", args...)
	if code != 0 {
		c.t.Fatalf("berth %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// fails runs a command that must fail with a message containing want.
func (c *cli) fails(want string, args ...string) {
	c.t.Helper()
	_, errOut, code := c.run("", args...)
	if code == 0 {
		c.t.Fatalf("berth %s succeeded; want failure %q", strings.Join(args, " "), want)
	}
	if !strings.Contains(errOut, want) {
		c.t.Fatalf("berth %s: stderr %q does not contain %q", strings.Join(args, " "), errOut, want)
	}
}

func TestCLI(t *testing.T) {
	cl := newCluster(t, 1, nil)
	addr := cl.Servers[0].APIAddr
	root := newCLI(t, addr, cl.RootToken)

	t.Run("bad input exits non-zero and stores nothing", func(t *testing.T) {
		for _, name := range []string{"web;rm -rf /", "../etc", "a$(id)", "café", "", strings.Repeat("a", 200), "Web"} {
			root.fails("invalid app name", "apps", "create", name)
		}
		root.ok("apps", "create", "web")
		root.fails("already exists", "apps", "create", "web")
		root.fails("not found", "config", "-a", "nope")
		root.fails("invalid config key", "config", "set", "-a", "web", "GOOD=1", "1BAD=2")
		root.fails("is not KEY=VALUE", "config", "set", "-a", "web", "NOEQUALS")
		root.fails("--confirm web", "apps", "destroy", "web")
		root.fails("--confirm web", "apps", "destroy", "web", "--confirm", "wbe")
		out := root.ok("--json", "apps", "list")
		var apps []api.App
		if err := json.Unmarshal([]byte(out), &apps); err != nil || len(apps) != 1 || apps[0].Name != "web" {
			t.Fatalf("apps after bad input = %s (%v)", out, err)
		}
		if out := root.ok("config", "-a", "web", "--json"); !strings.Contains(out, `"keys": []`) {
			t.Fatalf("config after a refused set = %s", out)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		newCLI(t, addr, "").fails("no token", "apps", "list")
		newCLI(t, addr, "berth_forged").fails("unknown or was revoked", "apps", "list")
		out := root.ok("tokens", "create", "--name", "ro", "--role", "viewer", "--json")
		var tok api.Token
		if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Secret, "berth_") {
			t.Fatalf("tokens create = %s (%v)", out, err)
		}
		viewer := newCLI(t, addr, tok.Secret)
		root.ok("config", "set", "-a", "web", "SECRET=hunter2")
		if out := viewer.ok("config", "-a", "web"); strings.Contains(out, "hunter2") || !strings.Contains(out, "SECRET") {
			t.Fatalf("viewer sees %q; want the key without its value", out)
		}
		viewer.fails("may not", "config", "get", "-a", "web", "SECRET")
		viewer.fails("may not", "config", "set", "-a", "web", "X=1")
		viewer.fails("may not", "apps", "create", "other")
		root.ok("tokens", "revoke", "ro")
		viewer.fails("unknown or was revoked", "apps", "list")
		root.fails("unknown role", "tokens", "create", "--name", "x", "--role", "superuser")
		root.fails("last admin token", "tokens", "revoke", "root")
	})

	t.Run("config, flags after arguments, and audit", func(t *testing.T) {
		root.ok("config", "set", "-a", "web", "A=1", "B=two words", "C=x=y")
		if got := strings.TrimSpace(root.ok("config", "get", "-a", "web", "C")); got != "x=y" {
			t.Fatalf("config get C = %q", got)
		}
		if got := strings.TrimSpace(root.ok("config", "get", "B", "-a", "web")); got != "two words" {
			t.Fatalf("config get with -a after the key = %q", got)
		}
		root.ok("config", "unset", "-a", "web", "A", "B")
		root.fails("has no config var A", "config", "get", "-a", "web", "A")
		out := root.ok("audit", "-a", "web")
		for _, want := range []string{"config.set", "config.unset", "apps.create", "root"} {
			if !strings.Contains(out, want) {
				t.Fatalf("audit lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "hunter2") || strings.Contains(out, "two words") {
			t.Fatalf("audit shows config values:\n%s", out)
		}
	})

	t.Run("login and app from the git remote", func(t *testing.T) {
		anon := newCLI(t, addr, "")
		out, errOut, code := anon.run(cl.RootToken+"\n", "login", "--addr", addr)
		if code != 0 {
			t.Fatalf("login: %s %s", out, errOut)
		}
		fi, err := os.Stat(filepath.Join(anon.home, ".config", "berth", "config.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("saved login: %v mode %v; want 0600", err, fi.Mode())
		}
		repo := t.TempDir()
		for _, args := range [][]string{{"init", "-q"}, {"remote", "add", "berth", "ssh://git@127.0.0.1:2222/web.git"}} {
			cmd := exec.Command("git", args...)
			cmd.Dir = repo
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v %s", args, err, out)
			}
		}
		anon.env = append(anon.env[:len(anon.env)-2], "BERTH_ADDR=", "BERTH_TOKEN=")
		anon.dir = repo
		if out := anon.ok("config", "get", "C"); strings.TrimSpace(out) != "x=y" {
			t.Fatalf("config get from the git remote's app = %q", out)
		}
		anon.ok("logout")
		anon.env = append(anon.env, "BERTH_ADDR="+addr)
		anon.fails("no token", "apps", "list")
	})

	t.Run("cluster status", func(t *testing.T) {
		out := root.ok("cluster", "status")
		if !strings.Contains(out, "Leader: s1") || !strings.Contains(out, "Leader ") && !strings.Contains(out, "Leader\t") {
			t.Fatalf("cluster status:\n%s", out)
		}
		root.fails("already bootstrapped", "cluster", "bootstrap")
	})
}
