package state

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Deploy states, in order. done, failed and superseded are final.
const (
	DeployPending    = "pending"    // queued behind the app's running deploy
	DeployStarting   = "starting"   // new instances submitted, waiting for health
	DeployCutover    = "cutover"    // new release active; routers switching
	DeployDraining   = "draining"   // old instances leaving and draining
	DeployDone       = "done"       // finished
	DeployFailed     = "failed"     // new instances removed, old release kept
	DeploySuperseded = "superseded" // a newer release was queued before this one started
)

// DeployFinal reports whether a deploy state is final.
func DeployFinal(s string) bool {
	return s == DeployDone || s == DeployFailed || s == DeploySuperseded
}

// DeployStep is one recorded transition.
type DeployStep struct {
	State string
	At    time.Time
	Note  string
}

// Deploy takes an app from one release to the next. The leader drives it
// and records every step, so a new leader can finish what the old began.
type Deploy struct {
	ID     string // APP-vN
	App    string
	From   uint64 // the active release when the deploy started (0: none)
	To     uint64
	State  string
	Reason string // why it failed
	Steps  []DeployStep
	// CreateIndex orders deploys of an app.
	CreateIndex uint64
}

// DeployID names the deploy of an app's release.
func DeployID(app string, version uint64) string { return fmt.Sprintf("%s-v%d", app, version) }

// queueDeploy records a pending deploy of a new release and supersedes
// older deploys that have not started yet.
func (t *Txn) queueDeploy(r *Release, at time.Time) error {
	it, err := t.txn.Get(tableDeploys, "app", r.App)
	if err != nil {
		return fmt.Errorf("list deploys: %w", err)
	}
	var stale []*Deploy
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if d := raw.(*Deploy); d.State == DeployPending {
			stale = append(stale, d)
		}
	}
	for _, d := range stale {
		next := *d
		next.State = DeploySuperseded
		next.Steps = append(slices.Clone(d.Steps), DeployStep{State: DeploySuperseded, At: at, Note: fmt.Sprintf("v%d was released before it started", r.Version)})
		if err := t.txn.Insert(tableDeploys, &next); err != nil {
			return fmt.Errorf("supersede deploy: %w", err)
		}
	}
	d := &Deploy{ID: DeployID(r.App, r.Version), App: r.App, To: r.Version, State: DeployPending,
		Steps: []DeployStep{{State: DeployPending, At: at}}, CreateIndex: t.index}
	if err := t.txn.Insert(tableDeploys, d); err != nil {
		return fmt.Errorf("insert deploy: %w", err)
	}
	return t.bump(tableDeploys)
}

// AdvanceDeploy moves a deploy to state. Moving to cutover also makes its
// release the app's active release, in the same step; starting records the
// release it replaces. Final deploys do not move.
func (t *Txn) AdvanceDeploy(id, state, note string, at time.Time) (*Deploy, error) {
	raw, err := t.txn.First(tableDeploys, "id", id)
	if err != nil {
		return nil, fmt.Errorf("get deploy: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("deploy %s: %w", id, ErrNotFound)
	}
	d := *raw.(*Deploy)
	if DeployFinal(d.State) {
		return nil, fmt.Errorf("deploy %s is already %s: %w", id, d.State, ErrExists)
	}
	app, err := t.app(d.App)
	if err != nil {
		return nil, err
	}
	switch state {
	case DeployStarting:
		if d.State == DeployPending {
			d.From = app.ActiveRelease
		}
	case DeployCutover:
		next := *app
		next.ActiveRelease = d.To
		if len(next.Formation) == 0 {
			// First deploy: one web instance, like Heroku.
			next.Formation = map[string]int{"web": 1}
		}
		if err := t.putApp(&next); err != nil {
			return nil, err
		}
	case DeployFailed:
		d.Reason = note
	}
	d.State = state
	d.Steps = append(slices.Clone(d.Steps), DeployStep{State: state, At: at, Note: note})
	if err := t.txn.Insert(tableDeploys, &d); err != nil {
		return nil, fmt.Errorf("update deploy: %w", err)
	}
	return &d, t.bump(tableDeploys)
}

// Deploys lists an app's deploys, newest first ("" for every app).
func (s *Snapshot) Deploys(ws memdb.WatchSet, app string) ([]*Deploy, uint64, error) {
	idx := maxIndex(s.txn, ws, tableDeploys)
	var it memdb.ResultIterator
	var err error
	if app == "" {
		it, err = s.txn.Get(tableDeploys, "id")
	} else {
		it, err = s.txn.Get(tableDeploys, "app", app)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list deploys: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Deploy
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Deploy))
	}
	slices.SortFunc(out, func(a, b *Deploy) int { return cmp.Compare(b.CreateIndex, a.CreateIndex) })
	return out, idx, nil
}

// Deploy returns one deploy or ErrNotFound.
func (s *Snapshot) Deploy(ws memdb.WatchSet, id string) (*Deploy, error) {
	ch, raw, err := s.txn.FirstWatch(tableDeploys, "id", id)
	if err != nil {
		return nil, fmt.Errorf("get deploy: %w", err)
	}
	ws.Add(ch)
	if raw == nil {
		return nil, fmt.Errorf("deploy %s: %w", id, ErrNotFound)
	}
	return raw.(*Deploy), nil
}
