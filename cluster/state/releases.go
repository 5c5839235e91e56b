package state

import (
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Release is an immutable, numbered version of an app: an image pinned by
// digest, the config (sealed) and process types it runs with.
type Release struct {
	App     string
	Version uint64
	// Image is the pullable reference, pinned by digest
	// (e.g. 127.0.0.1:5000/web@sha256:...). Empty until the app's first build.
	Image  string
	Digest string
	// Config is a copy of the app's sealed config at release time.
	Config         map[string][]byte
	Processes      map[string]string
	ReleaseCommand string
	Kind           string // deploy, config, rollback
	Description    string
	Commit         string
	BuildID        string
	CreatedBy      string
	CreatedAt      time.Time
}

// NewRelease is what a writer supplies; the store fills in the version and
// the config.
type NewRelease struct {
	App            string
	Image, Digest  string
	Processes      map[string]string
	ReleaseCommand string
	Kind           string
	Description    string
	Commit         string
	BuildID        string
	CreatedBy      string
	CreatedAt      time.Time
}

// CreateRelease appends a release with the app's current config and the
// next version number.
func (t *Txn) CreateRelease(n NewRelease) (*Release, error) {
	app, err := t.app(n.App)
	if err != nil {
		return nil, err
	}
	cfg, err := t.txn.First(tableConfig, "id", n.App)
	if err != nil {
		return nil, fmt.Errorf("get config: %w", err)
	}
	sealed := map[string][]byte{}
	if cfg != nil {
		sealed = maps.Clone(cfg.(*Config).Sealed)
	}
	r := &Release{App: n.App, Version: app.LatestRelease + 1, Image: n.Image, Digest: n.Digest, Config: sealed,
		Processes: n.Processes, ReleaseCommand: n.ReleaseCommand, Kind: n.Kind, Description: n.Description,
		Commit: n.Commit, BuildID: n.BuildID, CreatedBy: n.CreatedBy, CreatedAt: n.CreatedAt}
	if err := t.txn.Insert(tableReleases, r); err != nil {
		return nil, fmt.Errorf("insert release: %w", err)
	}
	next := *app
	next.LatestRelease = r.Version
	if err := t.putApp(&next); err != nil {
		return nil, err
	}
	if r.Image != "" {
		if err := t.queueDeploy(r, n.CreatedAt); err != nil {
			return nil, err
		}
	}
	return r, t.bump(tableReleases)
}

// latestRelease returns the app's newest release, or nil.
func (t *Txn) latestRelease(app string) (*Release, error) {
	a, err := t.app(app)
	if err != nil || a.LatestRelease == 0 {
		return nil, err
	}
	raw, err := t.txn.First(tableReleases, "id", app, a.LatestRelease)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*Release), nil
}

// ReleaseForConfigChange records a release with the new config and the
// previous release's image, if the app has ever been deployed (Heroku: every
// config change is a release). It returns nil when there is nothing to
// release yet.
func (t *Txn) ReleaseForConfigChange(app, description, by string, at time.Time) (*Release, error) {
	prev, err := t.latestRelease(app)
	if err != nil || prev == nil || prev.Image == "" {
		return nil, err
	}
	return t.CreateRelease(NewRelease{App: app, Image: prev.Image, Digest: prev.Digest, Processes: prev.Processes,
		ReleaseCommand: prev.ReleaseCommand, Kind: "config", Description: description, Commit: prev.Commit, CreatedBy: by, CreatedAt: at})
}

// Rollback records a new release with the image, config and processes of
// version target (0: the one before the latest), and restores that config as
// the app's current config.
func (t *Txn) Rollback(app string, target uint64, by string, at time.Time) (*Release, error) {
	a, err := t.app(app)
	if err != nil {
		return nil, err
	}
	if target == 0 {
		if a.LatestRelease < 2 {
			return nil, fmt.Errorf("%s has no release before v%d to roll back to: %w", app, a.LatestRelease, ErrNotFound)
		}
		target = a.LatestRelease - 1
	}
	raw, err := t.txn.First(tableReleases, "id", app, target)
	if err != nil {
		return nil, fmt.Errorf("get release: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("release v%d of %s: %w", target, app, ErrNotFound)
	}
	old := raw.(*Release)
	if old.Image == "" {
		return nil, fmt.Errorf("release v%d of %s has no image to roll back to: %w", target, app, ErrNotFound)
	}
	if err := t.txn.Insert(tableConfig, &Config{App: app, Sealed: maps.Clone(old.Config), ModifyIndex: t.index}); err != nil {
		return nil, fmt.Errorf("restore config: %w", err)
	}
	if err := t.bump(tableConfig); err != nil {
		return nil, err
	}
	return t.CreateRelease(NewRelease{App: app, Image: old.Image, Digest: old.Digest, Processes: old.Processes,
		ReleaseCommand: old.ReleaseCommand, Kind: "rollback", Description: fmt.Sprintf("Rollback to v%d", target),
		Commit: old.Commit, CreatedBy: by, CreatedAt: at})
}

// Releases lists an app's releases, newest first.
func (s *Snapshot) Releases(ws memdb.WatchSet, app string) ([]*Release, uint64, error) {
	idx := maxIndex(s.txn, ws, tableReleases)
	it, err := s.txn.GetReverse(tableReleases, "app", app)
	if err != nil {
		return nil, 0, fmt.Errorf("list releases: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Release
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Release))
	}
	return out, idx, nil
}

// Release returns one release or ErrNotFound.
func (s *Snapshot) Release(ws memdb.WatchSet, app string, version uint64) (*Release, uint64, error) {
	idx := maxIndex(s.txn, ws, tableReleases)
	ch, raw, err := s.txn.FirstWatch(tableReleases, "id", app, version)
	if err != nil {
		return nil, 0, fmt.Errorf("get release: %w", err)
	}
	ws.Add(ch)
	if raw == nil {
		return nil, idx, fmt.Errorf("release v%d of %s: %w", version, app, ErrNotFound)
	}
	return raw.(*Release), idx, nil
}

// ReleaseOfBuild returns the release a build produced, or ErrNotFound.
func (s *Snapshot) ReleaseOfBuild(app, buildID string) (*Release, error) {
	it, err := s.txn.GetReverse(tableReleases, "app", app)
	if err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*Release); r.BuildID == buildID {
			return r, nil
		}
	}
	return nil, fmt.Errorf("release of build %s: %w", buildID, ErrNotFound)
}
