package httpapi

import (
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

func toAPIDomain(d *state.Domain) api.Domain {
	return api.Domain{Name: d.Name, App: d.App, CreatedAt: d.CreatedAt}
}

func (a *API) domainsList(w http.ResponseWriter, r *request) error {
	name, _, err := r.appAction(auth.ReadApp)
	if err != nil {
		return err
	}
	if _, _, err := r.snap.App(nil, name); err != nil {
		return err
	}
	return r.blocking(w, func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error) {
		ds, idx, err := snap.Domains(ws, name)
		out := []api.Domain{}
		for _, d := range ds {
			out = append(out, toAPIDomain(d))
		}
		return out, idx, err
	})
}

// checkDomain refuses names the router gives apps on its own: the apps
// domain and anything under it (APP.<apps domain> is automatic).
func (a *API) checkDomain(d string) error {
	ad := a.cfg.AppsDomain
	if ad == "" {
		return nil
	}
	host := strings.TrimPrefix(d, "*.")
	if host == ad || strings.HasSuffix(host, "."+ad) {
		return &api.Error{Code: api.CodeConflict, Message: fmt.Sprintf(
			"%s is under the apps domain %s, whose names routers give apps automatically (APP.%s); use a domain of your own", d, ad, ad)}
	}
	return nil
}

func (a *API) domainsAdd(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	var req api.DomainAddRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	d, err := api.NormalizeDomain(req.Domain)
	if err != nil {
		return err
	}
	if err := a.checkDomain(d); err != nil {
		return err
	}
	if _, _, err := r.snap.App(nil, name); err != nil {
		return err
	}
	cmd := fsm.DomainAdd{App: name, Domain: d, Time: time.Now().UTC()}
	cmd.Audited = r.audit(id, "domains.add", name, d)
	res, _, err := r.apply(cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toAPIDomain(res.(*state.Domain)))
	return nil
}

func (a *API) domainsRemove(w http.ResponseWriter, r *request) error {
	name, id, err := r.appAction(auth.WriteApp)
	if err != nil {
		return err
	}
	d, err := api.NormalizeDomain(r.PathValue("domain"))
	if err != nil {
		return err
	}
	cmd := fsm.DomainRemove{App: name, Domain: d}
	cmd.Audited = r.audit(id, "domains.remove", name, d)
	if _, _, err := r.apply(cmd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
