package httpapi

import (
	"cmp"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
)

func (a *API) toAPIApp(app *state.App) api.App {
	out := api.App{Name: app.Name, DeployBranch: app.DeployBranch, LatestRelease: app.LatestRelease,
		ActiveRelease: app.ActiveRelease, Formation: app.Formation,
		ForceHTTPS: app.ForceHTTPS, HSTS: app.HSTS, WebURL: a.webURL(app.Name), LB: cmp.Or(app.LB, "round_robin"),
		CreatedAt: app.CreatedAt, CreateIndex: app.CreateIndex, ModifyIndex: app.ModifyIndex}
	if app.DeployTimeout > 0 {
		out.DeployTimeout = app.DeployTimeout.String()
	}
	if a.cfg.GitHost != "" {
		out.GitRemote = "ssh://git@" + a.cfg.GitHost + "/" + app.Name + ".git"
	}
	return out
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
				out = append(out, a.toAPIApp(app))
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

// appAction validates the {app} path value and checks that the caller may
// do action on that app.
func (r *request) appAction(action auth.Action) (string, *auth.Identity, error) {
	name, err := appName(r)
	if err != nil {
		return "", nil, err
	}
	id, err := r.require(action, name)
	return name, id, err
}

func (a *API) appsGet(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		app, idx, err := snap.App(ws, name)
		if err != nil {
			return nil, 0, err
		}
		return a.toAPIApp(app), idx, nil
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
	if req.DeployBranch != "" {
		if err := api.ValidateBranch(req.DeployBranch); err != nil {
			return err
		}
	}
	res, _, err := r.apply(fsm.AppCreate{Audited: r.audit(id, "apps.create", req.Name, ""), Name: req.Name, DeployBranch: req.DeployBranch, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.toAPIApp(res.(*state.App)))
	return nil
}

func (a *API) appsDestroy(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.ManageApps)
	if err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.AppDestroy{Audited: r.audit(id, "apps.destroy", name, ""), Name: name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) appsUpdate(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	var req api.AppUpdateRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	cmd := fsm.AppUpdate{Name: name, DeployBranch: req.DeployBranch}
	var detail []string
	if b := req.DeployBranch; b != nil {
		if *b != "" {
			if err := api.ValidateBranch(*b); err != nil {
				return err
			}
		}
		detail = append(detail, "deploy_branch="+*b)
	}
	if s := req.DeployTimeout; s != nil {
		var d time.Duration
		if *s != "" {
			if d, err = time.ParseDuration(*s); err != nil || d < time.Second || d > 30*time.Minute {
				return badRequest("deploy_timeout must be a duration between 1s and 30m, like 90s")
			}
		}
		cmd.DeployTimeout = &d
		detail = append(detail, "deploy_timeout="+*s)
	}
	if req.ForceHTTPS != nil {
		cmd.ForceHTTPS = req.ForceHTTPS
		detail = append(detail, fmt.Sprintf("force_https=%t", *req.ForceHTTPS))
	}
	if req.HSTS != nil {
		cmd.HSTS = req.HSTS
		detail = append(detail, fmt.Sprintf("hsts=%t", *req.HSTS))
	}
	if req.LB != nil {
		lb := *req.LB
		switch lb {
		case "round_robin":
			lb = "" // the default
		case "", "least_conn":
		default:
			return badRequest("lb %q: use round_robin or least_conn", clipName(lb))
		}
		cmd.LB = &lb
		detail = append(detail, "lb="+*req.LB)
	}
	if len(detail) == 0 {
		return badRequest("nothing to change: give deploy_branch, deploy_timeout, force_https, hsts or lb")
	}
	cmd.Audited = r.audit(id, "apps.update", name, strings.Join(detail, " "))
	res, _, err := r.apply(cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.toAPIApp(res.(*state.App)))
	return nil
}
