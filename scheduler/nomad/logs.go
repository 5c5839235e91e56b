package nomad

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// Logs come from Nomad's task log files (stdout and stderr of each
// allocation), read through its client-node API.
const (
	followPoll  = time.Second     // how often a following Logs looks for new instances
	followGrace = 2 * time.Second // a stopped instance's stream is kept this long for its last lines
	tailMin     = 16 << 10        // first guess of the bytes holding the last N lines
	tailPerLine = 256
	tailMax     = 4 << 20
	maxLine     = 64 << 10 // longer lines are split
)

// Logs implements scheduler.Runtime. Nomad's log files carry no
// timestamps: a line's Time is when the runtime read it, Since is not
// supported (lines are not filtered by it), and lines of stdout and
// stderr of one instance are not interleaved as written (stdout first).
// Without Follow, Tail applies to each instance, and instances come in
// order (process, index). With Follow, lines come as they are written,
// from the instances there are and from those that start later, until
// ctx ends (Logs then returns nil).
func (r *Runtime) Logs(ctx context.Context, app string, opts scheduler.LogOptions, out func(scheduler.LogLine)) error {
	if err := r.usable(); err != nil {
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
	ts, err := r.logTargets(ctx, app, opts.Process)
	if err != nil {
		return fmt.Errorf("logs of %s: %w", app, err)
	}
	lines := make([][]string, len(ts))
	errs := make([]error, len(ts))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, t := range ts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			lines[i], errs[i] = r.tailOf(ctx, t.alloc, t.task, opts.Tail)
		})
	}
	wg.Wait()
	for i, t := range ts {
		if errs[i] != nil {
			return fmt.Errorf("logs of %s %s: %w", app, t.name, errs[i])
		}
	}
	now := time.Now()
	for i, t := range ts {
		for _, l := range lines[i] {
			out(scheduler.LogLine{Time: now, Instance: t.name, Text: l})
		}
	}
	return nil
}

// logTarget is an instance whose logs can be read.
type logTarget struct {
	alloc *api.Allocation // ID and NodeID: what the log API needs
	task  string
	name  string // "web.1"
}

// logTargets lists the app's instances of process ("" for all) whose task
// has started (Nomad has no logs before), in order.
func (r *Runtime) logTargets(ctx context.Context, app, process string) ([]logTarget, error) {
	stubs, err := r.allocations(ctx, app)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(stubs, func(a, b *api.AllocationListStub) int {
		return cmp.Or(cmp.Compare(a.TaskGroup, b.TaskGroup), cmp.Compare(allocIndex(a.Name), allocIndex(b.Name)), cmp.Compare(a.CreateIndex, b.CreateIndex))
	})
	var out []logTarget
	for _, a := range stubs {
		if _, _, ok := parseJobID(app, a.JobID); !ok || !visible(a) || (process != "" && a.TaskGroup != process) {
			continue
		}
		if ts := a.TaskStates[a.TaskGroup]; ts == nil || ts.StartedAt.IsZero() {
			continue
		}
		out = append(out, logTarget{
			alloc: &api.Allocation{ID: a.ID, NodeID: a.NodeID, Namespace: a.Namespace, TaskGroup: a.TaskGroup},
			task:  a.TaskGroup,
			name:  a.TaskGroup + "." + strconv.Itoa(allocIndex(a.Name)),
		})
	}
	return out, nil
}

// tailOf returns the last tail lines of a task (all with tail 0): stdout's
// then stderr's, tail in all, each stream keeping its most recent lines.
func (r *Runtime) tailOf(ctx context.Context, a *api.Allocation, task string, tail int) ([]string, error) {
	outL, err := r.tailStream(ctx, a, task, "stdout", tail)
	if err != nil {
		return nil, err
	}
	errL, err := r.tailStream(ctx, a, task, "stderr", tail)
	if err != nil {
		return nil, err
	}
	if tail <= 0 || len(outL)+len(errL) <= tail {
		return append(outL, errL...), nil
	}
	nErr := min(len(errL), max(tail-len(outL), tail/2))
	nOut := min(len(outL), tail-nErr)
	return append(outL[len(outL)-nOut:], errL[len(errL)-nErr:]...), nil
}

// tailStream reads the last tail lines of one of a task's streams: it
// reads a guess of the bytes from the end, more if they hold too few
// lines.
func (r *Runtime) tailStream(ctx context.Context, a *api.Allocation, task, typ string, tail int) ([]string, error) {
	if tail <= 0 {
		var buf bytes.Buffer
		if err := r.readLogs(ctx, a, task, typ, "start", 0, false, func(p []byte) { buf.Write(p) }); err != nil {
			return nil, err
		}
		return splitLines(buf.Bytes()), nil
	}
	want := int64(max(tailMin, tail*tailPerLine))
	for {
		var buf bytes.Buffer
		if err := r.readLogs(ctx, a, task, typ, "end", want, false, func(p []byte) { buf.Write(p) }); err != nil {
			return nil, err
		}
		lines := splitLines(buf.Bytes())
		truncated := int64(buf.Len()) >= want
		if truncated && len(lines) > 0 {
			lines = lines[1:] // the first line was cut
		}
		if len(lines) >= tail || !truncated || want >= tailMax {
			return lines[max(0, len(lines)-tail):], nil
		}
		want *= 4
	}
}

// splitLines splits output into lines, without their ends.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	s := strings.TrimSuffix(string(b), "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// readLogs streams one of a task's log streams to data until it ends (at
// the end of the logs without follow) or ctx ends. Logs that do not exist
// (yet, or anymore) are no error.
func (r *Runtime) readLogs(ctx context.Context, a *api.Allocation, task, typ, origin string, offset int64, follow bool, data func([]byte)) error {
	cancel := make(chan struct{})
	defer close(cancel)
	frames, errc := r.c.stream.Logs(a, follow, task, typ, origin, offset, cancel, qopts(ctx))
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return nil
			}
			if len(f.Data) > 0 {
				data(f.Data)
			}
		case err := <-errc:
			if ctx.Err() != nil || notFound(err) {
				return nil
			}
			return r.nomadErr(fmt.Sprintf("read %s of allocation %.8s", typ, a.ID), err)
		case <-ctx.Done():
			// The request ends with ctx; the client's reader then reports
			// an error or closes frames. Drain until it does, or it blocks
			// forever sending a frame.
			for {
				select {
				case _, ok := <-frames:
					if !ok {
						return nil
					}
				case <-errc:
					return nil
				}
			}
		}
	}
}

// lineWriter turns a stream's chunks into lines.
type lineWriter struct {
	buf  []byte
	emit func(string)
}

func (w *lineWriter) write(p []byte) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(strings.TrimSuffix(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) >= maxLine {
		w.flush()
	}
	if len(w.buf) == 0 {
		w.buf = nil // let go of the consumed prefix
	}
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.emit(string(w.buf))
		w.buf = nil
	}
}

// followed is a following Logs' record of one instance.
type followed struct {
	cancel context.CancelFunc
	gone   time.Time // when it was last seen missing from the instances
}

// follow streams the logs of the app's instances, old and new.
func (r *Runtime) follow(ctx context.Context, app string, opts scheduler.LogOptions, out func(scheduler.LogLine)) error {
	var (
		mu      sync.Mutex // serialises out
		wg      sync.WaitGroup
		streams = map[string]*followed{}
	)
	defer func() {
		for _, s := range streams {
			s.cancel()
		}
		wg.Wait()
	}()
	emit := func(name string) func(string) {
		return func(text string) {
			mu.Lock()
			defer mu.Unlock()
			if ctx.Err() == nil {
				out(scheduler.LogLine{Time: time.Now(), Instance: name, Text: text})
			}
		}
	}
	tick := time.NewTicker(followPoll)
	defer tick.Stop()
	for first := true; ; first = false {
		ts, err := r.logTargets(ctx, app, opts.Process)
		switch {
		case err != nil && first:
			return fmt.Errorf("logs of %s: %w", app, err)
		case err != nil && ctx.Err() == nil:
			r.log.Warn("follow logs", "app", app, "err", err)
		}
		if err == nil {
			seen := map[string]bool{}
			for _, t := range ts {
				seen[t.alloc.ID] = true
				if s := streams[t.alloc.ID]; s != nil {
					s.gone = time.Time{}
					continue
				}
				sctx, cancel := context.WithCancel(ctx)
				streams[t.alloc.ID] = &followed{cancel: cancel}
				tail := -1 // an instance that started after Logs was called: all it wrote
				if first {
					tail = opts.Tail
				}
				wg.Go(func() { r.followTask(sctx, t, tail, emit(t.name)) })
			}
			now := time.Now()
			for id, s := range streams {
				switch {
				case seen[id]:
				case s.gone.IsZero():
					s.gone = now
				case now.Sub(s.gone) >= followGrace:
					s.cancel()
					delete(streams, id)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// followTask streams a task's stdout and stderr as lines until ctx ends:
// with tail > 0 its last tail lines first, with 0 all it wrote, with -1
// everything from the start.
func (r *Runtime) followTask(ctx context.Context, t logTarget, tail int, emit func(string)) {
	origin := "start"
	if tail > 0 {
		lines, err := r.tailOf(ctx, t.alloc, t.task, tail)
		if err != nil && ctx.Err() == nil {
			r.log.Debug("tail logs", "instance", t.name, "err", err)
		}
		for _, l := range lines {
			emit(l)
		}
		origin = "end"
	}
	var wg sync.WaitGroup
	for _, typ := range []string{"stdout", "stderr"} {
		wg.Go(func() {
			w := &lineWriter{emit: emit}
			if err := r.readLogs(ctx, t.alloc, t.task, typ, origin, 0, true, w.write); err != nil && ctx.Err() == nil {
				r.log.Debug("follow logs", "instance", t.name, "stream", typ, "err", err)
			}
			w.flush()
		})
	}
	wg.Wait()
}
