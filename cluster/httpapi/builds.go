package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
)

// Builds is the build pipeline as the API sees it.
type Builds interface {
	// Upload builds a tar of source code and releases it, writing progress
	// lines to out; it returns the new release's version.
	Upload(ctx context.Context, req UploadRequest, out io.Writer) (uint64, error)
	// ImportImage pushes an image of the local engine to the registry and
	// releases it.
	ImportImage(ctx context.Context, app, image, description, by string) (uint64, error)
	// ImageAvailable reports whether a release's image is still in the registry.
	ImageAvailable(ctx context.Context, rel *state.Release) error
}

// UploadRequest describes an uploaded build.
type UploadRequest struct {
	App, By string
	Source  io.Reader
}

var errNoBuilds = errors.New("this server does not run builds (no Docker engine or registry configured)")

func toAPIBuild(b *state.Build, withOutput bool) api.Build {
	out := api.Build{ID: b.ID, App: b.App, Status: b.Status, Source: b.Source, Commit: b.Commit, Branch: b.Branch,
		Server: b.Server, CreatedBy: b.CreatedBy, StartedAt: b.StartedAt, FinishedAt: b.FinishedAt, Release: b.Release, Error: b.Error}
	if withOutput {
		out.Output = b.Output
	}
	if len(b.Phases) > 0 {
		out.PhaseSeconds = make(map[string]float64, len(b.Phases))
		for k, us := range b.Phases {
			out.PhaseSeconds[k] = float64(us) / 1e6
		}
	}
	return out
}

func (a *API) buildsList(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		if _, _, err := snap.App(ws, name); err != nil {
			return nil, 0, err
		}
		builds, idx, err := snap.Builds(ws, name)
		out := []api.Build{}
		for _, b := range builds {
			out = append(out, toAPIBuild(b, false))
		}
		return out, idx, err
	})
}

func (a *API) buildsGet(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		b, idx, err := snap.Build(ws, name, id)
		if err != nil {
			return nil, 0, err
		}
		return toAPIBuild(b, true), idx, nil
	})
}

// buildsUpload streams a build's progress as text lines; the last line is
// api.BuildResultPrefix + "ok vN" or + "error MESSAGE".
func (a *API) buildsUpload(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	if _, _, err := r.snap.App(nil, name); err != nil {
		return err
	}
	if a.cfg.Builds == nil {
		return &api.Error{Code: api.CodeUnavailable, Message: errNoBuilds.Error()}
	}
	// Progress streams back while the source is still being read.
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := &flushWriter{w: w, rc: rc}
	v, err := a.cfg.Builds.Upload(r.Context(), UploadRequest{App: name, By: id.Name, Source: r.Body}, out)
	if err != nil {
		fmt.Fprintf(out, "%serror %s\n", api.BuildResultPrefix, toAPIError(err).Message)
		return nil
	}
	fmt.Fprintf(out, "%sok v%d\n", api.BuildResultPrefix, v)
	return nil
}

// flushWriter sends every write to the client at once.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}
