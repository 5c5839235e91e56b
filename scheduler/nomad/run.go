package nomad

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// outputSettle is how long Run gives Nomad's log collector after a
// one-off task died, before it reads the rest of the task's output. On a
// busy host the collector can lag behind: when no output at all has
// arrived by then, Run reads again every outputSettle for up to
// outputPatience (a command that prints nothing pays that wait).
const (
	outputSettle   = 250 * time.Millisecond
	outputPatience = 2 * time.Second
)

// Run implements scheduler.Runtime with a one-off batch job
// berth-APP-run-RANDOM with rel's image and config (no restart, no
// reschedule), purged when the command ends (also when ctx ends, which
// kills it).
//
// An attached command runs in a task that is `/bin/sh -c "exec sleep ..."`
// (buildpack images have both): the argv is executed into it through
// Nomad's exec API, with stdin, stdout and stderr attached, and the exit
// code is the exec'd command's. Nomad cannot attach stdin to a task, and
// its log collector can lose the output of a task that exits at once.
//
// When the image has no shell to sleep in (FROM scratch), and always when
// detached, the argv is the task itself, run without a shell (it replaces
// the image's entrypoint): its output is read from the task's logs while
// it runs, and the exit code from its termination event. Such images
// cannot take stdin. A command Nomad cannot start (no such executable)
// returns -1 and the driver's error.
//
// A detached command returns 0 once Nomad accepted its job; the job stays
// (Nomad collects dead batch jobs after a few hours) until Destroy.
//
// Run returns without waiting for opts.Stdin's Read to return.
func (r *Runtime) Run(ctx context.Context, rel scheduler.Release, opts scheduler.RunOptions) (int, error) {
	if err := r.usable(); err != nil {
		return -1, err
	}
	if err := validRelease(rel); err != nil {
		return -1, err
	}
	if len(opts.Command) == 0 || opts.Command[0] == "" {
		return -1, fmt.Errorf("%w: run needs a command", ErrInvalid)
	}
	if opts.Detach {
		return r.run(ctx, rel, opts, runDirect)
	}
	// Attached commands exec into a sleeping task, so their output comes
	// through the exec stream: Nomad's docker log collector is stopped as
	// soon as a task's container exits and, on a busy host, can lose all
	// the output of a command that ends at once. Images without /bin/sh
	// and sleep (FROM scratch) run the argv as the task itself.
	code, err := r.run(ctx, rel, opts, runExec)
	if errors.Is(err, errSleeperDied) && opts.Stdin == nil {
		r.log.Debug("run: no shell to exec into; running the command as the task", "app", rel.App, "err", err)
		return r.run(ctx, rel, opts, runDirect)
	}
	return code, err
}

// errSleeperDied: the sleeping task of an exec run died before the command
// could be exec'd into it (typically: the image has no /bin/sh or sleep).
var errSleeperDied = errors.New("the task to exec the command into died")

// run runs one one-off job in mode.
func (r *Runtime) run(ctx context.Context, rel scheduler.Release, opts scheduler.RunOptions, mode runMode) (int, error) {
	stdout, stderr := orDiscard(opts.Stdout), orDiscard(opts.Stderr)
	id := runJobID(rel.App)
	what := fmt.Sprintf("run %q in %s v%d", opts.Command[0], rel.App, rel.Version)
	resp, err := r.register(ctx, runJob(id, rel, opts.Command, mode, r.jobOptions()), nil)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if opts.Detach {
		r.log.Info("detached run", "app", rel.App, "release", rel.Version, "job", id)
		return 0, nil
	}
	defer r.purge(ctx, id)

	alloc, ts, err := r.waitTask(ctx, id, resp.EvalID, mode == runExec)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if mode == runExec {
		stdin := opts.Stdin
		if stdin == nil {
			stdin = strings.NewReader("") // the command reads EOF
		}
		code, err := r.c.stream.Exec(ctx, alloc, runTask, false, opts.Command, stdin, stdout, stderr, nil, qopts(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return -1, fmt.Errorf("%s: %w", what, ctx.Err())
			}
			return code, fmt.Errorf("%s: %w", what, r.nomadErr("exec", err))
		}
		return code, nil
	}

	// Direct: follow the task's output while waiting for it to die, then
	// read what the follow had not delivered yet.
	var (
		wmu     sync.Mutex // stdout and stderr may be one writer
		wg      sync.WaitGroup
		streams = []string{"stdout", "stderr"}
		written = make([]int64, len(streams))
		writers = []io.Writer{stdout, stderr}
	)
	write := func(i int) func([]byte) {
		return func(p []byte) {
			wmu.Lock()
			defer wmu.Unlock()
			written[i] += int64(len(p))
			_, _ = writers[i].Write(p)
		}
	}
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	if !ts.StartedAt.IsZero() {
		for i, typ := range streams {
			wg.Go(func() {
				if err := r.readLogs(lctx, alloc, runTask, typ, "start", 0, true, write(i)); err != nil && lctx.Err() == nil {
					r.log.Debug("run: follow output", "job", id, "stream", typ, "err", err)
				}
			})
		}
	}
	ts, err = r.waitDead(ctx, alloc.ID)
	if err == nil {
		// Let Nomad's log collector write the last lines.
		err = sleep(ctx, outputSettle)
	}
	lcancel()
	wg.Wait()
	if err != nil {
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if !ts.StartedAt.IsZero() {
		deadline := time.Now().Add(outputPatience)
		for {
			for i, typ := range streams {
				skip := written[i]
				err := r.readLogs(ctx, alloc, runTask, typ, "start", 0, false, func(p []byte) {
					if skip >= int64(len(p)) {
						skip -= int64(len(p))
						return
					}
					write(i)(p[skip:])
					skip = 0
				})
				if err != nil {
					r.log.Warn("run: read output", "job", id, "stream", typ, "err", err)
				}
			}
			if written[0]+written[1] > 0 || time.Now().After(deadline) || sleep(ctx, outputSettle) != nil {
				break
			}
		}
	}
	code, ok := exitCode(ts)
	if !ok {
		return -1, fmt.Errorf("%s: %s", what, cmpOrString(taskMessage(ts), "the command did not run"))
	}
	return code, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func cmpOrString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// purge removes a run's job; it goes on when ctx has ended.
func (r *Runtime) purge(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupAfter)
	defer cancel()
	_, _, err := r.c.jobs.DeregisterOpts(id, &api.DeregisterOptions{Purge: true, NoShutdownDelay: true}, wopts(ctx))
	if err != nil && !notFound(err) {
		r.log.Warn("purge one-off job", "job", id, "err", err)
	}
}

// waitTask waits until the run job's task has started (running, or dead
// already) and returns its allocation. With running, a dead task is an
// error. A job Nomad cannot place fails with the scheduler's reason.
func (r *Runtime) waitTask(ctx context.Context, id, evalID string, running bool) (*api.Allocation, *api.TaskState, error) {
	for {
		stubs, _, err := r.c.jobs.Allocations(id, false, qopts(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, r.nomadErr("list allocations of job "+id, err)
		}
		if len(stubs) == 0 {
			if err := r.placementFailure(ctx, evalID); err != nil {
				return nil, nil, err
			}
		}
		for _, a := range stubs {
			ts := a.TaskStates[runTask]
			if ts == nil {
				continue
			}
			dead := ts.State == "dead"
			if dead && running {
				return nil, nil, fmt.Errorf("%w: %s", errSleeperDied, cmpOrString(taskMessage(ts), "it exited"))
			}
			if (ts.State == "running" && !ts.StartedAt.IsZero()) || dead {
				alloc, _, err := r.c.allocs.Info(a.ID, qopts(ctx))
				if err != nil {
					return nil, nil, r.nomadErr("read allocation "+a.ID, err)
				}
				return alloc, ts, nil
			}
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, nil, err
		}
	}
}

// placementFailure returns why Nomad could not place a job's evaluation,
// or nil while it may still place it.
func (r *Runtime) placementFailure(ctx context.Context, evalID string) error {
	if evalID == "" {
		return nil
	}
	ev, _, err := r.c.evals.Info(evalID, qopts(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.nomadErr("read evaluation "+evalID, err)
	}
	if ev.Status != "complete" || len(ev.FailedTGAllocs) == 0 {
		return nil
	}
	var reasons []string
	for _, g := range slices.Sorted(maps.Keys(ev.FailedTGAllocs)) {
		m := ev.FailedTGAllocs[g]
		var why []string
		for _, k := range slices.Sorted(maps.Keys(m.DimensionExhausted)) {
			why = append(why, k+" exhausted")
		}
		for _, k := range slices.Sorted(maps.Keys(m.ConstraintFiltered)) {
			why = append(why, "constraint "+k)
		}
		for _, k := range slices.Sorted(maps.Keys(m.ClassFiltered)) {
			why = append(why, "class "+k+" filtered")
		}
		reasons = append(reasons, fmt.Sprintf("%s: %d of %d nodes evaluated fit none: %s",
			g, m.NodesEvaluated, m.NodesEvaluated+m.NodesFiltered, strings.Join(why, ", ")))
	}
	return fmt.Errorf("nomad cannot place the job: %s", strings.Join(reasons, "; "))
}

// waitDead waits until a run's task is dead and returns its state, with
// Nomad's blocking queries on the allocation.
func (r *Runtime) waitDead(ctx context.Context, allocID string) (*api.TaskState, error) {
	var index uint64
	for {
		q := &api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Second}
		a, meta, err := r.c.allocs.Info(allocID, q.WithContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, r.nomadErr("read allocation "+allocID, err)
		}
		if ts := a.TaskStates[runTask]; ts != nil && ts.State == "dead" {
			return ts, nil
		}
		if meta != nil && meta.LastIndex > index {
			index = meta.LastIndex
		} else if err := sleep(ctx, pollEvery); err != nil {
			return nil, err
		}
	}
}

// exitCode is a dead task's exit code, from its last termination event.
func exitCode(ts *api.TaskState) (int, bool) {
	if ts == nil {
		return 0, false
	}
	for i := len(ts.Events) - 1; i >= 0; i-- {
		e := ts.Events[i]
		if e.Type != api.TaskTerminated {
			continue
		}
		if s, ok := e.Details["exit_code"]; ok {
			if n, err := strconv.Atoi(s); err == nil {
				return n, true
			}
		}
		return e.ExitCode, true
	}
	return 0, false
}
