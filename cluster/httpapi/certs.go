package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
)

// The routers' shared certificate storage: certmagic keys and values
// (certificates, private keys, ACME accounts, challenge tokens) and locks.
// Values are sealed with the cluster keyring before they reach raft.

func certAAD(key string) []byte { return []byte("cert/" + key) }

// certKey checks the {key...} path value: certmagic keys are slash-separated
// paths of printable characters, never "." or ".." segments.
func certKey(r *request) (string, error) {
	key := r.PathValue("key")
	if key == "" || len(key) > 1024 {
		return "", badRequest("certificate storage key: 1-1024 characters")
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", badRequest("certificate storage key %q: empty, . or .. segment", key)
		}
	}
	for _, c := range key {
		if c < 0x21 || c == 0x7f {
			return "", badRequest("certificate storage key %q: control or space character", key)
		}
	}
	return key, nil
}

// lockName checks the {name} path value of a storage lock.
func lockName(r *request) (string, error) {
	name := r.PathValue("name")
	if name == "" || len(name) > 1024 || strings.ContainsFunc(name, func(c rune) bool { return c < 0x21 || c == 0x7f }) {
		return "", badRequest("lock name: 1-1024 printable characters without spaces")
	}
	return name, nil
}

func (a *API) certsGet(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	key, err := certKey(r)
	if err != nil {
		return err
	}
	c, err := r.snap.Cert(key)
	if err != nil {
		return err
	}
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	v, err := kr.Open(c.Value, certAAD(key))
	if err != nil {
		return fmt.Errorf("open %s: %w", key, err)
	}
	writeJSON(w, http.StatusOK, api.CertEntry{Key: key, Value: v, Size: len(v), Modified: c.Modified})
	return nil
}

func (a *API) certsList(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	keys, err := r.snap.CertKeys(r.URL.Query().Get("prefix"))
	if err != nil {
		return err
	}
	out := make([]api.CertEntry, 0, len(keys))
	for _, k := range keys {
		out = append(out, api.CertEntry{Key: k})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) certsPut(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	key, err := certKey(r)
	if err != nil {
		return err
	}
	var req api.CertPutRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if len(req.Value) > api.MaxCertValue {
		return &api.Error{Code: api.CodeTooLarge, Message: fmt.Sprintf("certificate storage value over %d bytes", api.MaxCertValue)}
	}
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	sealed, err := kr.Seal(req.Value, certAAD(key))
	if err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.CertPut{Key: key, Value: sealed, Time: time.Now().UTC()}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) certsDelete(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	key, err := certKey(r)
	if err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.CertDelete{Key: key}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) certLock(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	var req api.CertLockRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || ttl < time.Second || ttl > time.Hour {
		return badRequest("ttl must be a duration between 1s and 1h, like 2m")
	}
	if req.Owner == "" || len(req.Owner) > 255 {
		return badRequest("owner: 1-255 characters")
	}
	name, err := lockName(r)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	_, _, err = r.apply(fsm.CertLock{Name: name, Owner: req.Owner, Now: now, Expires: now.Add(ttl)})
	if errors.Is(err, state.ErrLocked) {
		return &api.Error{Code: api.CodeConflict, Message: err.Error()}
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) certUnlock(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	owner := r.URL.Query().Get("owner")
	if owner == "" {
		return badRequest("give the lock's owner: ?owner=...")
	}
	name, err := lockName(r)
	if err != nil {
		return err
	}
	if _, _, err := r.apply(fsm.CertLock{Name: name, Owner: owner, Release: true}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
