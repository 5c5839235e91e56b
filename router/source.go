package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// Source delivers the routes the router serves. Watch calls fn with a full
// snapshot as soon as it has one and again after every change, until ctx
// ends (it then returns ctx.Err()) or the source fails (it returns the
// error; the router keeps serving its last table and calls Watch again
// with backoff). fn is called from one goroutine at a time and must not
// keep the slice. Watch may be called again after it returns, and by more
// than one router at once.
//
// ControlPlaneSource (blocking queries on /v1, Consul health for nomad
// apps) is the Source of real routers; StaticSource and FileSource serve
// tests, benchmarks and JSON-only configs.
type Source interface {
	Watch(ctx context.Context, fn func([]Route)) error
}

// Compile-checked implementations.
var (
	_ Source = (*StaticSource)(nil)
	_ Source = (*FileSource)(nil)
	_ Source = SourceFunc(nil)
)

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context, fn func([]Route)) error

// Watch calls f.
func (f SourceFunc) Watch(ctx context.Context, fn func([]Route)) error { return f(ctx, fn) }

// StaticSource holds routes in memory; Set replaces them and every watcher
// gets the new snapshot. It is the fake for the control-plane source.
type StaticSource struct {
	mu      sync.Mutex
	routes  []Route
	version uint64
	changed chan struct{} // closed and replaced on every Set
	down    error         // non-nil: Watch fails with it (an unreachable source)
}

// NewStaticSource returns a source holding routes.
func NewStaticSource(routes ...Route) *StaticSource {
	return &StaticSource{routes: cloneRoutes(routes), changed: make(chan struct{})}
}

// Set replaces the routes and wakes every watcher.
func (s *StaticSource) Set(routes ...Route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes = cloneRoutes(routes)
	s.version++
	close(s.changed)
	s.changed = make(chan struct{})
}

// SetDown makes the source unreachable (err != nil) or reachable again
// (nil): watchers fail with err, as a control plane that went away would.
func (s *StaticSource) SetDown(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = err
	close(s.changed)
	s.changed = make(chan struct{})
}

// Watch delivers the current routes, then every Set, until ctx ends or the
// source is set down.
func (s *StaticSource) Watch(ctx context.Context, fn func([]Route)) error {
	var seen uint64
	first := true
	for {
		s.mu.Lock()
		routes, version, changed, down := s.routes, s.version, s.changed, s.down
		s.mu.Unlock()
		if down != nil {
			return down
		}
		if first || version != seen {
			first, seen = false, version
			fn(cloneRoutes(routes))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func cloneRoutes(routes []Route) []Route {
	out := make([]Route, len(routes))
	for i, r := range routes {
		out[i] = r.clone()
	}
	return out
}

// FileSource reads a JSON array of routes from a file and re-reads it when
// it changes (checked every Interval, default 1 s). A missing or broken
// file is an error: the router keeps its last table.
type FileSource struct {
	Path     string
	Interval time.Duration
}

// Watch delivers the file's routes and every change to them.
func (f *FileSource) Watch(ctx context.Context, fn func([]Route)) error {
	interval := f.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var last []byte
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		data, err := os.ReadFile(f.Path)
		if err != nil {
			return fmt.Errorf("route file: %w", err)
		}
		if last == nil || !bytes.Equal(data, last) {
			var routes []Route
			if err := json.Unmarshal(data, &routes); err != nil {
				return fmt.Errorf("route file %s: %w", f.Path, err)
			}
			last = data
			fn(routes)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ErrSourceDown is what tests use to take a StaticSource away.
var ErrSourceDown = errors.New("route source unreachable")

// equalRoutes reports whether two snapshots are the same.
func equalRoutes(a, b []Route) bool {
	return slices.EqualFunc(a, b, func(x, y Route) bool {
		return x.App == y.App && x.Release == y.Release && x.ForceHTTPS == y.ForceHTTPS && x.LB == y.LB &&
			slices.Equal(x.Hosts, y.Hosts) && slices.Equal(x.Upstreams, y.Upstreams)
	})
}
