package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
)

// toAPIRelease converts a release; config values are opened only if show.
func (a *API) toAPIRelease(rel *state.Release, show bool) (api.Release, error) {
	out := api.Release{App: rel.App, Version: rel.Version, Image: rel.Image, Digest: rel.Digest, Kind: rel.Kind,
		Description: rel.Description, Commit: rel.Commit, Processes: rel.Processes, ReleaseCommand: rel.ReleaseCommand,
		ConfigKeys: []string{}, CreatedBy: rel.CreatedBy, CreatedAt: rel.CreatedAt}
	cfg, err := a.openConfig(&state.Config{App: rel.App, Sealed: rel.Config}, show)
	if err != nil {
		return out, err
	}
	out.ConfigKeys, out.Config = cfg.Keys, cfg.Values
	return out, nil
}

func (a *API) releasesList(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		if _, _, err := snap.App(ws, name); err != nil {
			return nil, 0, err
		}
		rels, idx, err := snap.Releases(ws, name)
		if err != nil {
			return nil, 0, err
		}
		out := []api.Release{}
		for _, rel := range rels {
			ar, err := a.toAPIRelease(rel, false)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, ar)
		}
		return out, idx, nil
	})
}

func (a *API) releasesGet(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	v, err := api.ParseVersion(r.PathValue("version"))
	if err != nil {
		return err
	}
	show := id.Allowed(auth.ReadSecrets, name)
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		rel, idx, err := snap.Release(ws, name, v)
		if err != nil {
			return nil, 0, err
		}
		out, err := a.toAPIRelease(rel, show)
		return out, idx, err
	})
}

func (a *API) releasesRollback(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	var req api.RollbackRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	app, _, err := r.snap.App(nil, name)
	if err != nil {
		return err
	}
	target := req.Version
	if target == 0 {
		target = app.LatestRelease - min(app.LatestRelease, 1)
	}
	// The image must still be in the registry: retention keeps the images of
	// the last releases only.
	if rel, _, err := r.snap.Release(nil, name, target); err == nil && a.cfg.Builds != nil {
		if err := a.cfg.Builds.ImageAvailable(r.Context(), rel); err != nil {
			return &api.Error{Code: api.CodeConflict, Message: fmt.Sprintf("cannot roll back to v%d: %v", target, err)}
		}
	}
	res, _, err := r.apply(fsm.Rollback{Audited: r.audit(id, "releases.rollback", name, fmt.Sprintf("to v%d", target)),
		App: name, Version: req.Version, By: id.Name, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	out, err := a.toAPIRelease(res.(*state.Release), id.Allowed(auth.ReadSecrets, name))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) releasesImportImage(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	var req api.ImageDeployRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if req.Image == "" || len(req.Image) > 512 || slices.ContainsFunc([]rune(req.Image), func(c rune) bool { return c <= ' ' || c == 0x7f }) {
		return badRequest("image must be a Docker image reference such as myapp:latest or registry/app@sha256:...")
	}
	if _, _, err := r.snap.App(nil, name); err != nil {
		return err
	}
	if a.cfg.Builds == nil {
		return &api.Error{Code: api.CodeUnavailable, Message: errNoBuilds.Error()}
	}
	desc := req.Description
	if desc == "" {
		desc = "Deploy image " + req.Image
	}
	v, err := a.cfg.Builds.ImportImage(r.Context(), name, req.Image, desc, id.Name)
	if err != nil {
		return err
	}
	rel, _, err := a.cfg.Node.FSM().State().Snapshot().Release(nil, name, v)
	if err != nil {
		return err
	}
	out, err := a.toAPIRelease(rel, id.Allowed(auth.ReadSecrets, name))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}
