package state

import (
	"fmt"
	"slices"

	"github.com/hashicorp/go-memdb"
)

// Endpoints are where routers reach the healthy web instances of one
// release of an app, for runtimes without a discovery service of their own
// (the docker runtime). The leader's deployer publishes a new release's
// endpoints before it cuts over (so the switch to the new release and its
// upstreams is one step for the routers), keeps the active release's
// current as instances come and go, and deletes a release's endpoints when
// it stops. The nomad runtime publishes none: routers ask Consul.
type Endpoints struct {
	App     string
	Release uint64
	Addrs   []string
}

// SetEndpoints replaces the endpoints of an app's release; nil addrs
// delete them. Writing the value already there changes nothing (no index
// bump, so watching routers are not woken).
func (t *Txn) SetEndpoints(app string, release uint64, addrs []string) error {
	if _, err := t.app(app); err != nil {
		return err
	}
	addrs = slices.Clone(addrs)
	slices.Sort(addrs)
	raw, err := t.txn.First(tableEndpoints, "id", app, release)
	if err != nil {
		return fmt.Errorf("look up endpoints: %w", err)
	}
	switch {
	case raw == nil && addrs == nil:
		return nil
	case raw != nil && addrs == nil:
		if err := t.txn.Delete(tableEndpoints, raw); err != nil {
			return fmt.Errorf("delete endpoints: %w", err)
		}
		return t.bump(tableEndpoints)
	case raw != nil && slices.Equal(raw.(*Endpoints).Addrs, addrs):
		return nil
	}
	if err := t.txn.Insert(tableEndpoints, &Endpoints{App: app, Release: release, Addrs: addrs}); err != nil {
		return fmt.Errorf("update endpoints: %w", err)
	}
	return t.bump(tableEndpoints)
}

// Endpoints returns every published release's endpoints, by app and release.
func (s *Snapshot) Endpoints(ws memdb.WatchSet) (map[string]map[uint64][]string, uint64, error) {
	idx := maxIndex(s.txn, ws, tableEndpoints)
	it, err := s.txn.Get(tableEndpoints, "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list endpoints: %w", err)
	}
	ws.Add(it.WatchCh())
	out := map[string]map[uint64][]string{}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		e := raw.(*Endpoints)
		if out[e.App] == nil {
			out[e.App] = map[uint64][]string{}
		}
		out[e.App][e.Release] = e.Addrs
	}
	return out, idx, nil
}
