package docker

import (
	"context"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berthpaas/berth/scheduler"
)

// outputGrace bounds how long Run waits for the last output after the
// command exited.
const outputGrace = 5 * time.Second

// Run implements scheduler.Runtime. The command is an argv run without a
// shell (it replaces the image's entrypoint) in a new container with the
// release's image and config, which is removed afterwards (also when ctx
// ends: the command is then killed and ctx's error returned). A command
// the engine cannot start (no such executable) returns the engine's code
// (127, or 126) with its error. A detached command returns 0 once started;
// its container removes itself when it ends, and Destroy removes it
// before.
//
// Run returns without waiting for opts.Stdin's Read to return: the copy
// of stdin ends at its next Read.
func (r *Runtime) Run(ctx context.Context, rel scheduler.Release, opts scheduler.RunOptions) (int, error) {
	if err := r.usable(ctx); err != nil {
		return -1, err
	}
	if err := validRelease(rel); err != nil {
		return -1, err
	}
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return -1, fmt.Errorf("%w: run needs a command", ErrInvalid)
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	attach := !opts.Detach
	stdin := attach && opts.Stdin != nil
	m := meta{App: rel.App, Release: rel.Version, KillTimeout: killTimeout(rel), Run: true}
	secs := stopSeconds(m.KillTimeout)
	cfg := &container.Config{
		Image:        rel.Image,
		Env:          environment(rel),
		Labels:       m.labels(r.cfg.Cluster),
		Entrypoint:   opts.Command[:1],
		Cmd:          opts.Command[1:],
		StopTimeout:  &secs,
		AttachStdout: attach,
		AttachStderr: attach,
		AttachStdin:  stdin,
		OpenStdin:    stdin,
		StdinOnce:    stdin,
	}
	host := r.cfg.hostConfig(0, 0)
	host.AutoRemove = opts.Detach
	what := fmt.Sprintf("run %q in %s v%d", opts.Command[0], rel.App, rel.Version)
	id, err := r.create(ctx, spec{Name: runName(rel.App, rel.Version, randomSuffix()), Config: cfg, Host: host})
	if err != nil {
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if opts.Detach {
		if err := r.docker.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
			code := r.startFailureCode(id)
			r.removeRun(ctx, id)
			return code, fmt.Errorf("%s: %w", what, engineErr(err))
		}
		return 0, nil
	}
	defer r.removeRun(ctx, id)

	// Attach and wait before starting, so no output and no exit is missed.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	att, err := r.docker.ContainerAttach(wctx, id, container.AttachOptions{Stream: true, Stdin: stdin, Stdout: true, Stderr: true})
	if err != nil {
		return -1, fmt.Errorf("%s: attach: %w", what, engineErr(err))
	}
	defer att.Close()
	waitC, waitErrC := r.docker.ContainerWait(wctx, id, container.WaitConditionNextExit)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = stdcopy.StdCopy(stdout, stderr, att.Reader)
	}()
	if err := r.docker.ContainerStart(wctx, id, container.StartOptions{}); err != nil {
		att.Close()
		<-copied
		return r.startFailureCode(id), fmt.Errorf("%s: %w", what, engineErr(err))
	}
	if stdin {
		go func() {
			_, _ = io.Copy(att.Conn, opts.Stdin)
			_ = att.CloseWrite()
		}()
	}
	select {
	case res := <-waitC:
		t := time.NewTimer(outputGrace)
		select {
		case <-copied: // the stream ends when the container does
		case <-t.C:
			att.Close()
			<-copied
		}
		t.Stop()
		if res.Error != nil && res.Error.Message != "" {
			return -1, fmt.Errorf("%s: wait: %s", what, res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-waitErrC:
		att.Close()
		<-copied
		if ctx.Err() != nil {
			return -1, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		return -1, fmt.Errorf("%s: wait: %w", what, engineErr(err))
	}
}

// startFailureCode is the exit code the engine gave a container it could
// not start: 127 for a missing executable, 126 for one it cannot run.
func (r *Runtime) startFailureCode(id string) int {
	ctx, cancel := context.WithTimeout(r.ctx, engineTimeout)
	defer cancel()
	c, err := r.docker.ContainerInspect(ctx, id)
	if err != nil || c.ContainerJSONBase == nil || c.State == nil || c.State.ExitCode == 0 {
		return -1
	}
	return c.State.ExitCode
}

// removeRun removes a one-off container, killing it if it still runs.
func (r *Runtime) removeRun(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	defer cancel()
	err := r.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		r.log.Warn("remove one-off container", "id", short(id), "err", err)
	}
	r.forget(id)
}
