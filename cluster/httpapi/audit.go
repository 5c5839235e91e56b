package httpapi

import (
	"net/http"
	"strconv"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
)

func (a *API) auditList(w http.ResponseWriter, r *request) error {
	id, err := r.identity()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	app := q.Get("app")
	if app != "" {
		if err := api.ValidateAppName(app); err != nil {
			return err
		}
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > state.AuditRetain {
			return badRequest("limit must be between 1 and %d, not %q", state.AuditRetain, s)
		}
		limit = n
	}
	// Admins see everything; others only entries about apps they can see.
	keep := func(e *state.AuditEntry) bool {
		if id.Role == api.RoleAdmin {
			return true
		}
		return e.App != "" && id.SeesApp(e.App)
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		entries, idx, err := snap.Audit(ws, app, limit, keep)
		out := []api.AuditEntry{}
		for _, e := range entries {
			out = append(out, api.AuditEntry{Index: e.Index, Time: e.Time, Actor: e.Actor, Role: e.Role,
				Action: e.Action, App: e.App, Detail: e.Detail, Remote: e.Remote})
		}
		return out, idx, err
	})
}
