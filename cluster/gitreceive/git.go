package gitreceive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// serveGit runs an authorised git service for app on the channel and
// returns the exit status to report. app has been validated.
func (s *Server) serveGit(ctx context.Context, ch *session, log *slog.Logger, caller Caller, svc service, app, protocol string) int {
	stderr := ch.Stderr()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "berth: "+format+"\n", args...)
		return 1
	}
	// Upload-pack (fetch, clone) asks for the same right as a push: the
	// source of an app is as private as its deploys, and Auth has one
	// question for both.
	if err := s.cfg.Auth.Authorize(ctx, caller, app); err != nil {
		log.Info("git access denied", "err", err)
		return fail("%s", userMessage(err))
	}

	var args, env []string
	dir := s.repoDir(app)
	switch svc {
	case receivePack:
		branches, err := s.cfg.Auth.DeployBranches(ctx, app)
		if err != nil {
			log.Error("deploy branches", "err", err)
			return fail("cannot read the deploy branches of %s: %s", app, userMessage(err))
		}
		branches = validBranches(log, branches)
		initial := "main"
		if len(branches) > 0 {
			initial = branches[0]
		}
		if dir, err = s.ensureRepo(ctx, app, initial); err != nil {
			log.Error("prepare repository", "err", err)
			return fail("cannot prepare the repository of %s; the server log has details", app)
		}
		token, err := newToken()
		if err != nil {
			log.Error("push token", "err", err)
			return fail("internal error; the server log has details")
		}
		pushCtx, endPush := context.WithCancel(ctx)
		defer endPush()
		s.addPush(token, &push{ctx: pushCtx, app: app, caller: caller, branches: branches})
		defer s.removePush(token)
		args = []string{
			"-c", "receive.maxInputSize=" + strconv.FormatInt(s.cfg.MaxPushBytes, 10),
			"-c", "core.hooksPath=" + filepath.Join(dir, "hooks"),
			"receive-pack", dir,
		}
		env = []string{
			"BERTH_HOOK_BINARY=" + s.cfg.HookBinary,
			"BERTH_HOOK_SOCKET=" + s.hookSocket,
			"BERTH_HOOK_TOKEN=" + token,
			"BERTH_APP=" + app,
			"BERTH_DEPLOY_BRANCHES=" + strings.Join(branches, " "),
		}
	case uploadPack:
		if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
			return fail("%s has no code yet; push to it first", app)
		}
		// No hooks run on fetch; point hooksPath nowhere all the same.
		args = []string{"-c", "core.hooksPath=/dev/null", "upload-pack", "--strict", dir}
	default:
		return fail("unsupported service")
	}
	if protocol != "" {
		env = append(env, "GIT_PROTOCOL="+protocol)
	}

	began := time.Now()
	status, in, err := s.runProcess(ctx, ch, args, gitEnv(s.gitPath, env...), dir)
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "git session ended", "status", status, "bytes_in", in, "protocol", protocol,
		"duration", time.Since(began).Round(time.Millisecond), "err", err)
	return status
}

// runProcess runs git with args in its own process group, wired to the
// channel, reports its exit status on the channel (closing it), and returns
// the status and how many bytes the client sent.
// Cancelling ctx (connection lost, server stopping) kills the whole group,
// hooks included. The client may send at most MaxPushBytes plus protocol
// slack; beyond that the process is killed and the client told why.
func (s *Server) runProcess(ctx context.Context, ch *session, args, env []string, dir string) (int, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.gitPath, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	setProcessGroup(cmd)
	cmd.WaitDelay = processWaitDelay
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 1, 0, err
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(ch.Stderr(), "berth: cannot start git; the server log has details\n")
		return 1, 0, fmt.Errorf("start git: %w", err)
	}

	limit := s.cfg.MaxPushBytes + channelPushSlack
	in := &countingReader{r: ch}
	var tooBig atomic.Bool
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if n, _ := io.Copy(stdin, io.LimitReader(in, limit+1)); n > limit {
			tooBig.Store(true)
			fmt.Fprintf(ch.Stderr(), "berth: push rejected: it is larger than the limit of %s\n", formatBytes(s.cfg.MaxPushBytes))
			cancel()
		}
		// The client is done sending (or over the limit): tell git.
		stdin.Close()
	}()
	waitErr := cmd.Wait()
	status := exitStatus(waitErr)
	if tooBig.Load() {
		status = 1
	} else if in.n.Load() > s.cfg.MaxPushBytes+pushOverheadBytes {
		// git refused the pack ("pack exceeds maximum allowed size");
		// say what the limit is.
		fmt.Fprintf(ch.Stderr(), "berth: pushes are limited to %s; this one sent more\n", formatBytes(s.cfg.MaxPushBytes))
	}
	// Git is done: report its status and close the channel, which also
	// ends the copier's read if the client has not closed its side.
	ch.exit(status)
	<-copied
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return status, in.n.Load(), waitErr
	}
	if ctx.Err() != nil && !tooBig.Load() {
		return status, in.n.Load(), fmt.Errorf("git killed: %w", context.Cause(ctx))
	}
	return status, in.n.Load(), nil
}

// exitStatus maps a Wait error to an SSH exit status.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() > 0 {
		return exitErr.ExitCode()
	}
	return 255 // killed by a signal, or never ran
}

// validBranches keeps the branch names that can be passed to the hook in a
// space-separated list (git refnames never contain spaces or control
// characters, but the names come from Auth).
func validBranches(log *slog.Logger, branches []string) []string {
	out := branches[:0:0]
	for _, b := range branches {
		if b == "" || strings.ContainsFunc(b, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			log.Warn("ignoring invalid deploy branch", "branch", clip(sanitize(b)))
			continue
		}
		out = append(out, b)
	}
	return out
}

// newToken returns a per-push secret for the hook.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("push token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// formatBytes prints a size the way people write limits.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
