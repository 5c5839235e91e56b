package state

import (
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/go-memdb"
)

// App is an app's record.
type App struct {
	Name string
	// DeployBranch is the branch whose pushes deploy; "" means main or master.
	DeployBranch string
	// LatestRelease is the version of the newest release (0: none yet).
	LatestRelease uint64
	// ActiveRelease is the release that serves traffic (0: none yet); it
	// changes only when a deploy cuts over.
	ActiveRelease uint64
	// Formation is how many instances of each process type run.
	Formation map[string]int
	// Resources overrides memory and CPU per process type.
	Resources map[string]Resources
	// Checks overrides the health check per process type.
	Checks map[string]Check
	// DeployTimeout bounds how long new instances have to become healthy
	// (0: the default, 60 s).
	DeployTimeout time.Duration
	// ForceHTTPS makes routers redirect plain-HTTP requests to https.
	ForceHTTPS bool
	// HSTS makes routers send Strict-Transport-Security on https.
	HSTS bool
	// LB is the routers' load-balancing policy ("" round robin,
	// "least_conn").
	LB          string
	CreatedAt   time.Time
	CreateIndex uint64
	ModifyIndex uint64
}

// CreateApp inserts a new app; ErrExists if the name is taken.
func (t *Txn) CreateApp(name string, at time.Time) (*App, error) {
	existing, err := t.txn.First(tableApps, "id", name)
	if err != nil {
		return nil, fmt.Errorf("look up app: %w", err)
	}
	if existing != nil {
		return nil, fmt.Errorf("app %q: %w", name, ErrExists)
	}
	app := &App{Name: name, CreatedAt: at, CreateIndex: t.index, ModifyIndex: t.index}
	if err := t.txn.Insert(tableApps, app); err != nil {
		return nil, fmt.Errorf("insert app: %w", err)
	}
	return app, t.bump(tableApps)
}

// DeleteApp removes an app and everything that belongs to it.
func (t *Txn) DeleteApp(name string) error {
	existing, err := t.txn.First(tableApps, "id", name)
	if err != nil {
		return fmt.Errorf("look up app: %w", err)
	}
	if existing == nil {
		return fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	if err := t.txn.Delete(tableApps, existing); err != nil {
		return fmt.Errorf("delete app: %w", err)
	}
	if _, err := t.txn.DeleteAll(tableConfig, "id", name); err != nil {
		return fmt.Errorf("delete config: %w", err)
	}
	if _, err := t.txn.DeleteAll(tableReleases, "app", name); err != nil {
		return fmt.Errorf("delete releases: %w", err)
	}
	if _, err := t.txn.DeleteAll(tableBuilds, "app", name); err != nil {
		return fmt.Errorf("delete builds: %w", err)
	}
	if _, err := t.txn.DeleteAll(tableDeploys, "app", name); err != nil {
		return fmt.Errorf("delete deploys: %w", err)
	}
	if _, err := t.txn.DeleteAll(tableDomains, "app", name); err != nil {
		return fmt.Errorf("delete domains: %w", err)
	}
	if _, err := t.txn.DeleteAll(tableEndpoints, "app", name); err != nil {
		return fmt.Errorf("delete endpoints: %w", err)
	}
	return t.bump(tableApps, tableConfig, tableReleases, tableBuilds, tableDeploys, tableDomains, tableEndpoints)
}

// Apps lists all apps in name order, with the apps table's index.
func (s *Snapshot) Apps(ws memdb.WatchSet) ([]*App, uint64, error) {
	idx := maxIndex(s.txn, ws, tableApps)
	it, err := s.txn.Get(tableApps, "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list apps: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*App
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*App))
	}
	return out, idx, nil
}

// App returns one app or ErrNotFound.
func (s *Snapshot) App(ws memdb.WatchSet, name string) (*App, uint64, error) {
	idx := maxIndex(s.txn, ws, tableApps)
	ch, raw, err := s.txn.FirstWatch(tableApps, "id", name)
	if err != nil {
		return nil, 0, fmt.Errorf("get app: %w", err)
	}
	ws.Add(ch)
	if raw == nil {
		return nil, idx, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	return raw.(*App), idx, nil
}

// AppExists reports whether an app exists (for the FSM's checks).
func (t *Txn) AppExists(name string) bool {
	raw, err := t.txn.First(tableApps, "id", name)
	return err == nil && raw != nil
}

// UpdateApp changes an app's settings.
func (t *Txn) UpdateApp(name, deployBranch string) (*App, error) {
	app, err := t.app(name)
	if err != nil {
		return nil, err
	}
	next := *app
	next.DeployBranch = deployBranch
	next.ModifyIndex = t.index
	if err := t.txn.Insert(tableApps, &next); err != nil {
		return nil, fmt.Errorf("update app: %w", err)
	}
	return &next, t.bump(tableApps)
}

// app returns an app for writing, or ErrNotFound.
func (t *Txn) app(name string) (*App, error) {
	raw, err := t.txn.First(tableApps, "id", name)
	if err != nil {
		return nil, fmt.Errorf("look up app: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("app %q: %w", name, ErrNotFound)
	}
	return raw.(*App), nil
}

// Resources are per-process limits; zero fields take runtime defaults.
type Resources struct {
	MemoryMB int
	CPU      int
}

// Check is a per-process health check setting.
type Check struct {
	Type     string // http, tcp, none
	Path     string
	Interval time.Duration
	Timeout  time.Duration
}

// putApp writes a changed copy of an app.
func (t *Txn) putApp(a *App) error {
	a.ModifyIndex = t.index
	if err := t.txn.Insert(tableApps, a); err != nil {
		return fmt.Errorf("update app: %w", err)
	}
	return t.bump(tableApps)
}

// Scale sets instance counts (and optionally resources) of process types.
func (t *Txn) Scale(name string, counts map[string]int, res map[string]Resources) (*App, error) {
	app, err := t.app(name)
	if err != nil {
		return nil, err
	}
	next := *app
	next.Formation = maps.Clone(app.Formation)
	if next.Formation == nil {
		next.Formation = map[string]int{}
	}
	maps.Copy(next.Formation, counts)
	if len(res) > 0 {
		next.Resources = maps.Clone(app.Resources)
		if next.Resources == nil {
			next.Resources = map[string]Resources{}
		}
		maps.Copy(next.Resources, res)
	}
	return &next, t.putApp(&next)
}

// SetCheck sets the health check of one process type.
func (t *Txn) SetCheck(name, process string, c Check) (*App, error) {
	app, err := t.app(name)
	if err != nil {
		return nil, err
	}
	next := *app
	next.Checks = maps.Clone(app.Checks)
	if next.Checks == nil {
		next.Checks = map[string]Check{}
	}
	next.Checks[process] = c
	return &next, t.putApp(&next)
}

// SetRouting changes how routers serve the app; nil leaves a setting as
// it is.
func (t *Txn) SetRouting(name string, force, hsts *bool, lb *string) (*App, error) {
	app, err := t.app(name)
	if err != nil {
		return nil, err
	}
	next := *app
	if force != nil {
		next.ForceHTTPS = *force
	}
	if hsts != nil {
		next.HSTS = *hsts
	}
	if lb != nil {
		next.LB = *lb
	}
	return &next, t.putApp(&next)
}

// SetDeployTimeout changes how long a deploy waits for health.
func (t *Txn) SetDeployTimeout(name string, d time.Duration) (*App, error) {
	app, err := t.app(name)
	if err != nil {
		return nil, err
	}
	next := *app
	next.DeployTimeout = d
	return &next, t.putApp(&next)
}
