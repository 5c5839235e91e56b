package docker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berthpaas/berth/scheduler"
)

// followPoll is how often a following Logs looks for new instances (a
// deploy, a restart) and for instances the engine restarted.
const followPoll = time.Second

// Logs implements scheduler.Logs. Without Follow, the lines of every
// instance (Tail applies to each) are merged and ordered by time. With
// Follow, lines come as they are written, from the instances there are
// and from those that start later, until ctx ends (Logs then returns nil).
func (r *Runtime) Logs(ctx context.Context, app string, opts scheduler.LogOptions, out func(scheduler.LogLine)) error {
	if err := r.usable(ctx); err != nil {
		return err
	}
	if err := validApp(app); err != nil {
		return err
	}
	if opts.Process != "" {
		if err := scheduler.ValidateProcess(opts.Process); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)() // a closing runtime ends a follow
	if opts.Follow {
		return r.follow(ctx, app, opts, out)
	}
	ts, err := r.logInstances(ctx, app, opts.Process)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		lines []scheduler.LogLine
		errs  = make([]error, len(ts))
		wg    sync.WaitGroup
	)
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.readLogs(ctx, t, logsOptions(opts.Tail, opts.Since, false), func(l scheduler.LogLine) {
				mu.Lock()
				lines = append(lines, l)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("logs of %s: %w", app, err)
		}
	}
	slices.SortStableFunc(lines, func(a, b scheduler.LogLine) int { return a.Time.Compare(b.Time) })
	for _, l := range lines {
		out(l)
	}
	return nil
}

// logInstances lists the app's instances of process ("" for all).
func (r *Runtime) logInstances(ctx context.Context, app, process string) ([]*inst, error) {
	ts, err := r.list(ctx, listFilter{app: app})
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", app, err)
	}
	return slices.DeleteFunc(ts, func(t *inst) bool { return process != "" && t.meta.Process != process }), nil
}

func logsOptions(tail int, since time.Time, follow bool) container.LogsOptions {
	o := container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: follow, Tail: "all"}
	if tail > 0 {
		o.Tail = strconv.Itoa(tail)
	}
	if !since.IsZero() {
		o.Since = since.UTC().Format(time.RFC3339Nano)
	}
	return o
}

// stream is a following Logs' record of one instance.
type stream struct {
	running bool
	last    time.Time // of the last line seen
}

// follow streams the logs of the app's instances, old and new.
func (r *Runtime) follow(ctx context.Context, app string, opts scheduler.LogOptions, out func(scheduler.LogLine)) error {
	var (
		mu      sync.Mutex // serialises out and guards streams
		streams = map[string]*stream{}
		wg      sync.WaitGroup
	)
	defer wg.Wait()
	emit := func(s *stream) func(scheduler.LogLine) {
		return func(l scheduler.LogLine) {
			mu.Lock()
			defer mu.Unlock()
			s.last = l.Time
			if ctx.Err() == nil {
				out(l)
			}
		}
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for first := true; ; first = false {
		ts, err := r.logInstances(ctx, app, opts.Process)
		switch {
		case err != nil && first:
			return err
		case err != nil && ctx.Err() == nil:
			r.log.Warn("follow logs", "app", app, "err", err)
		}
		for _, t := range ts {
			r.mu.Lock()
			running := t.state == container.StateRunning
			r.mu.Unlock()
			mu.Lock()
			s := streams[t.id]
			var o container.LogsOptions
			switch {
			case s == nil && first:
				o = logsOptions(opts.Tail, opts.Since, true)
			case s == nil: // started after Logs was called: everything it wrote
				o = logsOptions(0, opts.Since, true)
			case !s.running && running: // the engine restarted it
				o = logsOptions(0, s.last.Add(time.Nanosecond), true)
			default:
				mu.Unlock()
				continue
			}
			if s == nil {
				s = &stream{}
				streams[t.id] = s
			}
			s.running = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := r.readLogs(ctx, t, o, emit(s)); err != nil && ctx.Err() == nil {
					r.log.Debug("follow logs", "id", short(t.id), "err", err)
				}
				mu.Lock()
				s.running = false
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// readLogs reads one container's log lines. A container removed meanwhile
// has no lines, which is no error.
func (r *Runtime) readLogs(ctx context.Context, t *inst, o container.LogsOptions, emit func(scheduler.LogLine)) error {
	name := t.meta.Process + "." + strconv.Itoa(t.meta.Index)
	rc, err := r.docker.ContainerLogs(ctx, t.id, o)
	if err != nil {
		if cerrdefs.IsNotFound(err) || ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s: %w", name, engineErr(err))
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	defer func() {
		rc.Close()
		pr.Close()
		<-done
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := parseLogLine(sc.Text())
		l.Instance = name
		emit(l)
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// parseLogLine splits the engine's "TIMESTAMP text" line.
func parseLogLine(s string) scheduler.LogLine {
	ts, text, ok := strings.Cut(s, " ")
	if ok {
		if tm, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			return scheduler.LogLine{Time: tm, Text: strings.TrimRight(text, "\r")}
		}
	}
	return scheduler.LogLine{Time: time.Now(), Text: s}
}
