package httpapi

import (
	"net/http"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/berthpaas/berth/scheduler"
	"github.com/hashicorp/go-memdb"
)

// routesTable reads the route table from snap.
func (a *API) routesTable(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
	apps, i1, err := snap.Apps(ws)
	if err != nil {
		return nil, 0, err
	}
	domains, i2, err := snap.Domains(ws, "")
	if err != nil {
		return nil, 0, err
	}
	eps, i3, err := snap.Endpoints(ws)
	if err != nil {
		return nil, 0, err
	}
	idx := max(i1, i2, i3)
	hosts := map[string][]string{}
	for _, d := range domains {
		hosts[d.App] = append(hosts[d.App], d.Name)
	}
	disc, _ := a.cfg.Runtime.(scheduler.ConsulDiscovery)
	out := api.RouteTable{Index: idx, AppsDomain: a.cfg.AppsDomain, Routes: []api.Route{}}
	if a.cfg.Runtime != nil {
		out.Runtime = a.cfg.Runtime.Name()
	}
	for _, app := range apps {
		rt := api.Route{App: app.Name, Release: app.ActiveRelease, Hosts: hosts[app.Name],
			ForceHTTPS: app.ForceHTTPS, HSTS: app.HSTS, LB: app.LB}
		if app.ActiveRelease > 0 {
			if disc != nil {
				rt.Service, rt.Tag = disc.ConsulService(app.Name, "web", app.ActiveRelease)
			} else {
				rt.Upstreams = eps[app.Name][app.ActiveRelease]
			}
		}
		out.Routes = append(out.Routes, rt)
	}
	return out, idx, nil
}

func (a *API) routesGet(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	return r.blocking(w, a.routesTable)
}

func (a *API) routersReport(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	routerID := r.PathValue("id")
	if err := api.ValidateTokenName(routerID); err != nil {
		return badRequest("router id: use 1-64 letters, digits, dots, dashes or underscores")
	}
	var req api.RouterReport
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if len(req.Name) > 255 {
		return badRequest("router name: at most 255 characters")
	}
	now := time.Now().UTC()
	cmd := fsm.RouterReport{
		Router:       state.Router{ID: routerID, Name: req.Name, Applied: req.Applied, SeenAt: now},
		ForgetBefore: now.Add(-10 * api.RouterLiveWindow),
	}
	if _, _, err := r.apply(cmd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) routersList(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		rs, idx, err := snap.Routers(ws)
		out := []api.RouterInfo{}
		for _, x := range rs {
			out = append(out, api.RouterInfo{ID: x.ID, Name: x.Name, Applied: x.Applied, SeenAt: x.SeenAt})
		}
		return out, idx, err
	})
}

// webURL is where app answers through the routers, if known.
func (a *API) webURL(app string) string {
	if a.cfg.AppsDomain == "" || a.cfg.WebScheme == "" {
		return ""
	}
	return a.cfg.WebScheme + "://" + app + "." + a.cfg.AppsDomain + a.cfg.WebPort + "/"
}
