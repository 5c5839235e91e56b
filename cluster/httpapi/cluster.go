package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
)

// Self describes this server; it needs no token so servers can find each
// other before the cluster has any.
func (a *API) Self() api.Self {
	st := a.cfg.Node.Stats()
	_, leader := a.cfg.Node.Leader()
	servers, _ := a.cfg.Node.Servers()
	lc := "never"
	if st.LastContact >= 0 {
		lc = st.LastContact.Round(time.Millisecond).String()
	}
	return api.Self{
		Name: a.cfg.Name, APIAddr: a.cfg.APIAddr, RaftAddr: a.cfg.Node.Addr(), State: st.State, Leader: leader,
		Term: st.Term, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex, LastSnapshotIndex: st.LastSnapshotIndex,
		LastContact: lc, HasState: len(servers) > 0, HasKeyring: a.cfg.Keyring.Load() != nil, BootstrapExpect: a.cfg.BootstrapExpect, Version: a.cfg.Version,
	}
}

func (a *API) clusterSelf(w http.ResponseWriter, _ *request) error {
	writeJSON(w, http.StatusOK, a.Self())
	return nil
}

func (a *API) clusterStatus(w http.ResponseWriter, r *request) error {
	if _, err := r.identity(); err != nil {
		return err
	}
	servers, err := a.cfg.Node.Servers()
	if err != nil {
		return err
	}
	_, leader := a.cfg.Node.Leader()
	out := api.ClusterStatus{Leader: leader, Term: a.cfg.Node.Stats().Term, Members: make([]api.Member, len(servers))}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, s := range servers {
		m := &out.Members[i]
		m.Name, m.RaftAddr, m.Suffrage, m.Leader = string(s.ID), string(s.Address), s.Suffrage.String(), string(s.ID) == leader
		m.APIAddr = a.apiAddrOf(m.Name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var self *api.Self
			var err error
			if m.Name == a.cfg.Name {
				s := a.Self()
				self = &s
			} else if m.APIAddr == "" {
				m.State, m.Error = "unknown", "API address not known yet"
				return
			} else if self, err = api.NewClient(m.APIAddr, "", nil).ClusterSelf(ctx); err != nil {
				m.State, m.Error = "unreachable", err.Error()
				return
			}
			m.State, m.Term, m.CommitIndex, m.AppliedIdx, m.LastContact = self.State, self.Term, self.CommitIndex, self.AppliedIndex, self.LastContact
		}()
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) apiAddrOf(name string) string {
	if name == a.cfg.Name {
		return a.cfg.APIAddr
	}
	return a.leaderAPIAddr(name)
}

func (a *API) clusterBootstrap(w http.ResponseWriter, r *request) error {
	if r.snap.ACLBootstrapped() {
		return state.ErrAlreadyBootstrapped
	}
	tok, secret, err := BootstrapToken()
	if err != nil {
		return err
	}
	cmd := fsm.ACLBootstrap{Audited: r.audit(&auth.Identity{Name: tok.Name, Role: tok.Role}, "cluster.bootstrap", "", ""), Token: *tok}
	if _, _, err := r.apply(cmd); err != nil {
		return err
	}
	out := toAPIToken(tok)
	out.Secret = secret
	writeJSON(w, http.StatusOK, api.BootstrapResponse{Token: out})
	return nil
}

// BootstrapToken makes the root token record and its secret.
func BootstrapToken() (*state.Token, string, error) {
	return newToken("root", api.RoleAdmin, nil, "bootstrap")
}

// requireJoinRights: before the cluster has a root token, servers may join
// and fetch the keyring freely (no secret exists yet); afterwards only an
// admin token may.
func (r *request) requireJoinRights() (*auth.Identity, error) {
	if !r.snap.ACLBootstrapped() {
		return &auth.Identity{Name: "server", Role: "server"}, nil
	}
	return r.require(auth.ManageCluster, "")
}

func (a *API) clusterKeyring(w http.ResponseWriter, r *request) error {
	if _, err := r.requireJoinRights(); err != nil {
		return err
	}
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	b, err := kr.Marshal()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.JoinResponse{Keyring: b})
	return nil
}

func validHostPort(what, s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return badRequest("%s %q must be host:port", what, s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return badRequest("%s %q has an invalid port", what, s)
	}
	return nil
}

func (a *API) clusterJoin(w http.ResponseWriter, r *request) error {
	id, err := r.requireJoinRights()
	if err != nil {
		return err
	}
	var req api.JoinRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if err := api.ValidateTokenName(req.Name); err != nil {
		return badRequest("invalid server name %q: use 1-64 letters, digits, '.', '_' or '-'", req.Name)
	}
	if err := validHostPort("raft_addr", req.RaftAddr); err != nil {
		return err
	}
	if err := validHostPort("api_addr", req.APIAddr); err != nil {
		return err
	}
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	servers, err := a.cfg.Node.Servers()
	if err != nil {
		return err
	}
	for _, s := range servers {
		if string(s.Address) == req.RaftAddr && string(s.ID) != req.Name {
			return &api.Error{Code: api.CodeConflict, Message: fmt.Sprintf(
				"raft address %s belongs to server %q; remove it first with 'berth cluster remove %s'", req.RaftAddr, s.ID, s.ID)}
		}
	}
	// Record the API address first so the new member can be forwarded to
	// as soon as it could become leader.
	upsert := fsm.ServerUpsert{Audited: r.audit(id, "cluster.join", "", req.Name+" "+req.RaftAddr),
		Server: state.Server{Name: req.Name, APIAddr: req.APIAddr, RaftAddr: req.RaftAddr}}
	if _, _, err := r.apply(upsert); err != nil {
		return err
	}
	if err := a.cfg.Node.AddVoter(req.Name, req.RaftAddr); err != nil {
		return err
	}
	b, err := kr.Marshal()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.JoinResponse{Keyring: b})
	return nil
}

func (a *API) clusterRemove(w http.ResponseWriter, r *request) error {
	id, err := r.require(auth.ManageCluster, "")
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	servers, err := a.cfg.Node.Servers()
	if err != nil {
		return err
	}
	found := false
	for _, s := range servers {
		found = found || string(s.ID) == name
	}
	if !found {
		return &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no server named %q in the cluster; see 'berth cluster members'", name)}
	}
	if len(servers) == 1 {
		return &api.Error{Code: api.CodeConflict, Message: "cannot remove the only server of the cluster"}
	}
	if _, _, err := r.apply(fsm.ServerRemove{Audited: r.audit(id, "cluster.remove", "", name), Name: name}); err != nil {
		return err
	}
	if err := a.cfg.Node.RemoveServer(name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) clusterSnapshot(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.ManageCluster, ""); err != nil {
		return err
	}
	if err := a.cfg.Node.Snapshot(); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
