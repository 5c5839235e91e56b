package state

import (
	"fmt"
	"maps"

	"github.com/hashicorp/go-memdb"
)

// Config holds an app's config vars, each value sealed by the keyring. The
// store never sees plaintext.
type Config struct {
	App         string
	Sealed      map[string][]byte
	ModifyIndex uint64
}

// UpdateConfig sets and unsets vars of an existing app in one step.
func (t *Txn) UpdateConfig(app string, set map[string][]byte, unset []string) (*Config, error) {
	if !t.AppExists(app) {
		return nil, fmt.Errorf("app %q: %w", app, ErrNotFound)
	}
	raw, err := t.txn.First(tableConfig, "id", app)
	if err != nil {
		return nil, fmt.Errorf("get config: %w", err)
	}
	next := &Config{App: app, Sealed: map[string][]byte{}, ModifyIndex: t.index}
	if raw != nil {
		// Copy: objects in memdb are shared with readers and never mutated.
		next.Sealed = maps.Clone(raw.(*Config).Sealed)
	}
	for _, k := range unset {
		delete(next.Sealed, k)
	}
	maps.Copy(next.Sealed, set)
	if err := t.txn.Insert(tableConfig, next); err != nil {
		return nil, fmt.Errorf("insert config: %w", err)
	}
	return next, t.bump(tableConfig)
}

// Config returns an app's config (empty if none was ever set).
func (s *Snapshot) Config(ws memdb.WatchSet, app string) (*Config, uint64, error) {
	idx := maxIndex(s.txn, ws, tableConfig)
	ch, raw, err := s.txn.FirstWatch(tableConfig, "id", app)
	if err != nil {
		return nil, 0, fmt.Errorf("get config: %w", err)
	}
	ws.Add(ch)
	if raw == nil {
		return &Config{App: app, Sealed: map[string][]byte{}}, idx, nil
	}
	return raw.(*Config), idx, nil
}
