package httpapi

import (
	"net/http"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
)

func toAPIApp(a *state.App) api.App {
	return api.App{Name: a.Name, CreatedAt: a.CreatedAt, CreateIndex: a.CreateIndex, ModifyIndex: a.ModifyIndex}
}

func (a *API) appsList(w http.ResponseWriter, r *request) error {
	id, err := r.identity()
	if err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		apps, idx, err := snap.Apps(ws)
		out := []api.App{}
		for _, app := range apps {
			if id.SeesApp(app.Name) {
				out = append(out, toAPIApp(app))
			}
		}
		return out, idx, err
	})
}

// appName validates the {app} path value before anything else uses it.
func appName(r *request) (string, error) {
	name := r.PathValue("app")
	return name, api.ValidateAppName(name)
}

func (a *API) appsGet(w http.ResponseWriter, r *request) error {
	name, err := appName(r)
	if err != nil {
		return err
	}
	if _, err := r.require(auth.ReadApp, name); err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		app, idx, err := snap.App(ws, name)
		if err != nil {
			return nil, 0, err
		}
		return toAPIApp(app), idx, nil
	})
}

func (a *API) appsCreate(w http.ResponseWriter, r *request) error {
	id, err := r.require(auth.ManageApps, "")
	if err != nil {
		return err
	}
	var req api.AppCreateRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if err := api.ValidateAppName(req.Name); err != nil {
		return err
	}
	res, _, err := r.apply(fsm.AppCreate{Audited: r.audit(id, "apps.create", req.Name, ""), Name: req.Name, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toAPIApp(res.(*state.App)))
	return nil
}

func (a *API) appsDestroy(w http.ResponseWriter, r *request) error {
	name, err := appName(r)
	if err != nil {
		return err
	}
	id, err := r.require(auth.ManageApps, name)
	if err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.AppDestroy{Audited: r.audit(id, "apps.destroy", name, ""), Name: name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
