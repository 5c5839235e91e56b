package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
	gossh "golang.org/x/crypto/ssh"
)

func toAPIKey(k *state.Key) api.Key {
	return api.Key{Name: k.Name, Fingerprint: k.Fingerprint, Owner: k.OwnerName, PublicKey: k.PublicKey, CreatedAt: k.CreatedAt}
}

func (a *API) keysList(w http.ResponseWriter, r *request) error {
	id, err := r.identity()
	if err != nil {
		return err
	}
	owner := id.AccessorID
	if id.Role == api.RoleAdmin {
		owner = ""
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		keys, idx, err := snap.Keys(ws, owner)
		out := []api.Key{}
		for _, k := range keys {
			out = append(out, toAPIKey(k))
		}
		return out, idx, err
	})
}

func (a *API) keysAdd(w http.ResponseWriter, r *request) error {
	id, err := r.identity()
	if err != nil {
		return err
	}
	var req api.KeyAddRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	pub, comment, _, rest, err := gossh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return badRequest("public_key is not one SSH public key in authorized_keys form (ssh-ed25519 AAAA... comment)")
	}
	name := req.Name
	if name == "" {
		name = comment
	}
	if name == "" {
		name = "default"
	}
	if err := api.ValidateTokenName(name); err != nil {
		return badRequest("invalid key name %q: use 1-64 letters, digits, '.', '_' or '-'", name)
	}
	k := state.Key{Fingerprint: gossh.FingerprintSHA256(pub), Name: name, Owner: id.AccessorID, OwnerName: id.Name,
		PublicKey: strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))), CreatedAt: time.Now().UTC()}
	if _, _, err := r.apply(fsm.KeyAdd{Audited: r.audit(id, "keys.add", "", name+" "+k.Fingerprint), Key: k}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toAPIKey(&k))
	return nil
}

func (a *API) keysRemove(w http.ResponseWriter, r *request) error {
	id, err := r.identity()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, _, err := r.apply(fsm.KeyRemove{Audited: r.audit(id, "keys.remove", "", name), Owner: id.AccessorID, Name: name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
