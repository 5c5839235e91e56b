package state

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Router is a router that reported to the control plane: which route-table
// index it serves and when it last said so. The deployer waits for every
// live router to serve a cutover's index before old instances go.
type Router struct {
	ID   string
	Name string
	// Applied is the routes index the router serves.
	Applied uint64
	SeenAt  time.Time
}

// UpsertRouter records a router's report.
func (t *Txn) UpsertRouter(r Router) error {
	if err := t.txn.Insert(tableRouters, &r); err != nil {
		return fmt.Errorf("update router: %w", err)
	}
	return t.bump(tableRouters)
}

// ForgetRouters removes routers not seen since before.
func (t *Txn) ForgetRouters(before time.Time) error {
	it, err := t.txn.Get(tableRouters, "id")
	if err != nil {
		return fmt.Errorf("list routers: %w", err)
	}
	var stale []any
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if raw.(*Router).SeenAt.Before(before) {
			stale = append(stale, raw)
		}
	}
	for _, raw := range stale {
		if err := t.txn.Delete(tableRouters, raw); err != nil {
			return fmt.Errorf("delete router: %w", err)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	return t.bump(tableRouters)
}

// Routers lists the routers that reported, by name.
func (s *Snapshot) Routers(ws memdb.WatchSet) ([]*Router, uint64, error) {
	idx := maxIndex(s.txn, ws, tableRouters)
	it, err := s.txn.Get(tableRouters, "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list routers: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Router
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Router))
	}
	slices.SortFunc(out, func(a, b *Router) int { return cmp.Compare(a.Name, b.Name) })
	return out, idx, nil
}

// RoutesIndex is the index of the route table routers read: the highest
// index of the apps, domains and endpoints tables.
func (s *Snapshot) RoutesIndex(ws memdb.WatchSet) uint64 {
	return maxIndex(s.txn, ws, tableApps, tableDomains, tableEndpoints)
}
