package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Domain is a custom host name an app answers on: an exact name
// ("example.com") or a one-label wildcard ("*.example.com"). A domain
// belongs to one app at most.
type Domain struct {
	Name        string
	App         string
	CreatedAt   time.Time
	CreateIndex uint64
}

// AddDomain gives name to app. Adding a domain the app already has is a
// no-op; a domain of another app is refused with ErrExists.
func (t *Txn) AddDomain(app, name string, at time.Time) (*Domain, error) {
	if _, err := t.app(app); err != nil {
		return nil, err
	}
	raw, err := t.txn.First(tableDomains, "id", name)
	if err != nil {
		return nil, fmt.Errorf("look up domain: %w", err)
	}
	if raw != nil {
		d := raw.(*Domain)
		if d.App == app {
			return d, nil
		}
		return nil, fmt.Errorf("domain %s belongs to app %s: %w", name, d.App, ErrExists)
	}
	d := &Domain{Name: name, App: app, CreatedAt: at, CreateIndex: t.index}
	if err := t.txn.Insert(tableDomains, d); err != nil {
		return nil, fmt.Errorf("insert domain: %w", err)
	}
	return d, t.bump(tableDomains)
}

// RemoveDomain takes name from app; ErrNotFound if app does not have it.
func (t *Txn) RemoveDomain(app, name string) error {
	raw, err := t.txn.First(tableDomains, "id", name)
	if err != nil {
		return fmt.Errorf("look up domain: %w", err)
	}
	if raw == nil || raw.(*Domain).App != app {
		return fmt.Errorf("domain %s of app %s: %w", name, app, ErrNotFound)
	}
	if err := t.txn.Delete(tableDomains, raw); err != nil {
		return fmt.Errorf("delete domain: %w", err)
	}
	return t.bump(tableDomains)
}

// Domains lists the domains of app ("" for every app), in name order.
func (s *Snapshot) Domains(ws memdb.WatchSet, app string) ([]*Domain, uint64, error) {
	idx := maxIndex(s.txn, ws, tableDomains)
	var it memdb.ResultIterator
	var err error
	if app == "" {
		it, err = s.txn.Get(tableDomains, "id")
	} else {
		it, err = s.txn.Get(tableDomains, "app", app)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list domains: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Domain
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Domain))
	}
	return out, idx, nil
}

// Domain returns the owner of a domain, or ErrNotFound.
func (s *Snapshot) Domain(name string) (*Domain, error) {
	raw, err := s.txn.First(tableDomains, "id", name)
	if err != nil {
		return nil, fmt.Errorf("look up domain: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("domain %s: %w", name, ErrNotFound)
	}
	return raw.(*Domain), nil
}
