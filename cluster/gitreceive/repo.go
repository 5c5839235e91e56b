package gitreceive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// preReceiveHook is the whole hook script berth installs in every
// repository. It is a constant: no app name, path or other input is ever
// written into it. The server passes what the hook needs in the
// environment of git receive-pack, which git hands on to the hook. Run by
// anything other than the berth server (a push over the file system, say),
// BERTH_HOOK_BINARY is unset and the push is refused.
const preReceiveHook = `#!/bin/sh
# Installed by the berth git server; rewritten on every push, do not edit.
# The berth server sets BERTH_HOOK_BINARY (and the socket, token and app the
# hook reports to) in the environment of git receive-pack.
if [ -z "$BERTH_HOOK_BINARY" ]; then
	echo "berth: this repository accepts pushes only through the berth git server" >&2
	exit 1
fi
exec "$BERTH_HOOK_BINARY" git-hook pre-receive
`

// gitEnv is the environment of every git process the server runs: no
// inherited variables (the server's environment may hold secrets), no
// system or user git configuration, a minimal PATH.
func gitEnv(gitPath string, extra ...string) []string {
	path := "/usr/local/bin:/usr/bin:/bin"
	if d := filepath.Dir(gitPath); !strings.Contains(":"+path+":", ":"+d+":") {
		path = d + ":" + path
	}
	env := []string{
		"PATH=" + path,
		"HOME=/nonexistent",
		"LANG=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
	}
	return append(env, extra...)
}

// repoDir is where app's bare repository lives. app must be valid.
func (s *Server) repoDir(app string) string {
	return filepath.Join(s.cfg.ReposDir, app+".git")
}

// ensureRepo creates app's bare repository if it does not exist and
// (re)installs berth's pre-receive hook. app must already be validated.
func (s *Server) ensureRepo(ctx context.Context, app, initialBranch string) (string, error) {
	dir := s.repoDir(app)
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); errors.Is(err, fs.ErrNotExist) {
		if err := s.createRepo(ctx, dir, initialBranch); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", fmt.Errorf("repository of %s: %w", app, err)
	}
	if err := installHook(dir); err != nil {
		return "", fmt.Errorf("repository of %s: %w", app, err)
	}
	return dir, nil
}

// createRepo runs git init in a temporary directory beside dir and renames
// it into place, so two first pushes at once cannot see a half-made repo.
func (s *Server) createRepo(ctx context.Context, dir, initialBranch string) error {
	if err := os.MkdirAll(s.cfg.ReposDir, 0o700); err != nil {
		return fmt.Errorf("create repositories directory: %w", err)
	}
	tmp, err := os.MkdirTemp(s.cfg.ReposDir, ".init-*")
	if err != nil {
		return fmt.Errorf("create repository: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, s.gitPath, "init", "--bare", "--quiet", "--template=",
		"--initial-branch="+initialBranch, tmp)
	cmd.Env = gitEnv(s.gitPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git init: %w: %s", err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another push created it first; use theirs.
		if _, statErr := os.Stat(filepath.Join(dir, "HEAD")); statErr == nil {
			return nil
		}
		return fmt.Errorf("create repository: %w", err)
	}
	return nil
}

// installHook writes berth's pre-receive hook unless it is already there,
// replacing it atomically otherwise.
func installHook(dir string) error {
	hooks := filepath.Join(dir, "hooks")
	path := filepath.Join(hooks, "pre-receive")
	if b, err := os.ReadFile(path); err == nil && string(b) == preReceiveHook {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o755 {
			return nil
		}
	}
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return fmt.Errorf("install hook: %w", err)
	}
	tmp, err := os.CreateTemp(hooks, ".pre-receive-*")
	if err != nil {
		return fmt.Errorf("install hook: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(preReceiveHook)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), 0o755)); err != nil {
		return fmt.Errorf("install hook: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("install hook: %w", err)
	}
	return nil
}
