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

func toAPIToken(t *state.Token) api.Token {
	return api.Token{AccessorID: t.AccessorID, Name: t.Name, Role: t.Role, Apps: t.Apps, CreatedAt: t.CreatedAt, CreatedBy: t.CreatedBy}
}

func (a *API) tokensList(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.ManageCluster, ""); err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		toks, idx, err := snap.Tokens(ws)
		out := []api.Token{}
		for _, t := range toks {
			out = append(out, toAPIToken(t))
		}
		return out, idx, err
	})
}

func (a *API) tokensSelf(w http.ResponseWriter, r *request) error {
	tok, err := callerToken(r.Request, r.snap)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPIToken(tok))
	return nil
}

// newToken builds a token record and its one-time secret.
func newToken(name, role string, apps []string, createdBy string) (*state.Token, string, error) {
	secret, accessor, err := auth.NewSecret()
	if err != nil {
		return nil, "", err
	}
	return &state.Token{AccessorID: accessor, Name: name, SecretHash: auth.HashSecret(secret), Role: role, Apps: apps,
		CreatedAt: time.Now().UTC(), CreatedBy: createdBy}, secret, nil
}

func (a *API) tokensCreate(w http.ResponseWriter, r *request) error {
	id, err := r.require(auth.ManageCluster, "")
	if err != nil {
		return err
	}
	var req api.TokenCreateRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if err := api.ValidateTokenName(req.Name); err != nil {
		return err
	}
	if err := auth.ValidateRole(req.Role, req.Apps); err != nil {
		if api.IsCode(err, api.CodeInvalidName) {
			return err
		}
		return badRequest("%v", err)
	}
	tok, secret, err := newToken(req.Name, req.Role, req.Apps, id.Name)
	if err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.TokenCreate{Audited: r.audit(id, "tokens.create", "", req.Name+" ("+req.Role+")"), Token: *tok}); err != nil {
		return err
	}
	out := toAPIToken(tok)
	out.Secret = secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) tokensRevoke(w http.ResponseWriter, r *request) error {
	id, err := r.require(auth.ManageCluster, "")
	if err != nil {
		return err
	}
	target := r.PathValue("id")
	if err := api.ValidateTokenName(target); err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.TokenRevoke{Audited: r.audit(id, "tokens.revoke", "", target), IDOrName: target}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
