package state

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Build states.
const (
	BuildRunning   = "running"
	BuildSucceeded = "succeeded"
	BuildFailed    = "failed"
)

// ErrBuildRunning means another build of the app is in progress.
var ErrBuildRunning = errors.New("a build of this app is in progress")

// StaleBuildAfter is how long a running build may go without finishing
// before another may start (its server probably died).
const StaleBuildAfter = time.Hour

// Build records one build and its output (the tail kept in the store).
type Build struct {
	ID         string
	App        string
	Status     string
	Source     string // git, upload, image
	Commit     string
	Branch     string
	Server     string
	CreatedBy  string
	StartedAt  time.Time
	FinishedAt time.Time
	Release    uint64
	Error      string
	Output     string
	// Phases holds how long each step took, in microseconds.
	Phases map[string]int64
}

// StartBuild records a running build; it fails with ErrBuildRunning while
// another build of the app runs (unless that one is stale at b.StartedAt).
func (t *Txn) StartBuild(b Build) error {
	if _, err := t.app(b.App); err != nil {
		return err
	}
	it, err := t.txn.Get(tableBuilds, "app", b.App)
	if err != nil {
		return fmt.Errorf("list builds: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		o := raw.(*Build)
		if o.Status == BuildRunning && b.StartedAt.Sub(o.StartedAt) < StaleBuildAfter {
			return fmt.Errorf("build %s of %s started by %s at %s is still running: %w", o.ID, o.App, o.CreatedBy, o.StartedAt.Format(time.RFC3339), ErrBuildRunning)
		}
	}
	b.Status = BuildRunning
	if err := t.txn.Insert(tableBuilds, &b); err != nil {
		return fmt.Errorf("insert build: %w", err)
	}
	return t.bump(tableBuilds)
}

// FinishBuild records a build's outcome.
func (t *Txn) FinishBuild(id, status, errMsg, output string, release uint64, phases map[string]int64, at time.Time) (*Build, error) {
	raw, err := t.txn.First(tableBuilds, "id", id)
	if err != nil {
		return nil, fmt.Errorf("get build: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("build %s: %w", id, ErrNotFound)
	}
	b := *raw.(*Build)
	b.Status, b.Error, b.Output, b.Release, b.Phases, b.FinishedAt = status, errMsg, output, release, phases, at
	if err := t.txn.Insert(tableBuilds, &b); err != nil {
		return nil, fmt.Errorf("update build: %w", err)
	}
	return &b, t.bump(tableBuilds)
}

// Builds lists an app's builds, newest first.
func (s *Snapshot) Builds(ws memdb.WatchSet, app string) ([]*Build, uint64, error) {
	idx := maxIndex(s.txn, ws, tableBuilds)
	it, err := s.txn.Get(tableBuilds, "app", app)
	if err != nil {
		return nil, 0, fmt.Errorf("list builds: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Build
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Build))
	}
	// Newest first: IDs are random, start times are ordered.
	slices.SortStableFunc(out, func(a, b *Build) int { return b.StartedAt.Compare(a.StartedAt) })
	return out, idx, nil
}

// Build returns one build or ErrNotFound.
func (s *Snapshot) Build(ws memdb.WatchSet, app, id string) (*Build, uint64, error) {
	idx := maxIndex(s.txn, ws, tableBuilds)
	ch, raw, err := s.txn.FirstWatch(tableBuilds, "id", id)
	if err != nil {
		return nil, 0, fmt.Errorf("get build: %w", err)
	}
	ws.Add(ch)
	if raw == nil || raw.(*Build).App != app {
		return nil, idx, fmt.Errorf("build %s of %s: %w", id, app, ErrNotFound)
	}
	return raw.(*Build), idx, nil
}
