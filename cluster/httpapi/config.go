package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
)

var errNoKeyring = errors.New("this server has no keyring yet; it is still joining the cluster")

// aad binds a sealed value to its app and key.
func aad(app, key string) []byte { return []byte(app + "/" + key) }

func (a *API) keyring() (*secrets.Keyring, error) {
	k := a.cfg.Keyring.Load()
	if k == nil {
		return nil, errNoKeyring
	}
	return k, nil
}

// openConfig turns sealed config into the API form, with values only if
// showValues.
func (a *API) openConfig(c *state.Config, showValues bool) (*api.Config, error) {
	out := &api.Config{App: c.App, Keys: []string{}, ModifyIndex: c.ModifyIndex, Redacted: !showValues}
	for k := range c.Sealed {
		out.Keys = append(out.Keys, k)
	}
	slices.Sort(out.Keys)
	if !showValues {
		return out, nil
	}
	kr, err := a.keyring()
	if err != nil {
		return nil, err
	}
	out.Values = make(map[string]string, len(c.Sealed))
	for k, sealed := range c.Sealed {
		pt, err := kr.Open(sealed, aad(c.App, k))
		if err != nil {
			return nil, fmt.Errorf("config %s of %s cannot be decrypted with this server's keyring: %w", k, c.App, err)
		}
		out.Values[k] = string(pt)
	}
	return out, nil
}

func (a *API) configGet(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	show := id.Allowed(auth.ReadSecrets, name)
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		if _, _, err := snap.App(ws, name); err != nil {
			return nil, 0, err
		}
		c, idx, err := snap.Config(ws, name)
		if err != nil {
			return nil, 0, err
		}
		out, err := a.openConfig(c, show)
		return out, idx, err
	})
}

func (a *API) configUpdate(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	var req api.ConfigUpdateRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if len(req.Set) == 0 && len(req.Unset) == 0 {
		return badRequest("nothing to change: give keys to set or unset")
	}
	for k, v := range req.Set {
		if err := api.ValidateConfigKey(k); err != nil {
			return err
		}
		if err := api.ValidateConfigValue(k, v); err != nil {
			return err
		}
	}
	for _, k := range req.Unset {
		if err := api.ValidateConfigKey(k); err != nil {
			return err
		}
		if _, ok := req.Set[k]; ok {
			return badRequest("key %s is both set and unset; do one or the other", k)
		}
	}
	if _, _, err := r.snap.App(nil, name); err != nil {
		return err
	}
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	sealed := make(map[string][]byte, len(req.Set))
	keys := make([]string, 0, len(req.Set))
	for k, v := range req.Set {
		s, err := kr.Seal([]byte(v), aad(name, k))
		if err != nil {
			return err
		}
		sealed[k] = s
		keys = append(keys, k)
	}
	slices.Sort(keys)
	action, detail, desc := "config.set", strings.Join(keys, ","), "Set "+strings.Join(keys, ", ")
	if len(keys) == 0 {
		action, detail, desc = "config.unset", strings.Join(req.Unset, ","), "Unset "+strings.Join(req.Unset, ", ")
	} else if len(req.Unset) > 0 {
		detail += " unset " + strings.Join(req.Unset, ",")
		desc += "; unset " + strings.Join(req.Unset, ", ")
	}
	res, _, err := r.apply(fsm.ConfigUpdate{Audited: r.audit(id, action, name, detail), App: name, Set: sealed, Unset: req.Unset,
		Description: desc + " config vars", By: id.Name, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	result := res.(*fsm.ConfigResult)
	out, err := a.openConfig(result.Config, id.Allowed(auth.ReadSecrets, name))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
