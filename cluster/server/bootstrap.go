package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/deployer"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/httpapi"
	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/raft"
)

// retryEvery is the pause between attempts to reach peers.
const retryEvery = 500 * time.Millisecond

func (s *Server) self() raft.Server {
	return raft.Server{ID: raft.ServerID(s.cfg.Name), Address: raft.ServerAddress(s.cfg.RaftAdvertise), Suffrage: raft.Voter}
}

// bootstrapSingle forms a one-server cluster.
func (s *Server) bootstrapSingle() error {
	if err := s.ensureKeyring(); err != nil {
		return err
	}
	return s.node.Bootstrap([]raft.Server{s.self()})
}

// form discovers the --join peers and forms a new cluster once
// bootstrap-expect servers (this one included) are known.
//
// The first founder by name is the seed: it makes the keyring, waits until
// every other founder has fetched it, and only then bootstraps raft with all
// founders. The others never bootstrap: they have no raft configuration, so
// they start no election until the seed's leader reaches them. That way no
// leader, and so no root token, can exist before every founder holds the
// keyring (fetching it needs no token only until the root token exists).
// A server that finds an existing cluster and has no keyring joins it.
func (s *Server) form(ctx context.Context) error {
	logged := 0
	for ; ; logged++ {
		if servers, err := s.node.Servers(); err == nil && len(servers) > 0 {
			return nil // the seed's leader has reached us
		}
		found := map[string]api.Self{s.cfg.Name: {Name: s.cfg.Name, APIAddr: s.cfg.Advertise, RaftAddr: s.cfg.RaftAdvertise, HasKeyring: s.keyring.Load() != nil}}
		existing := false
		for _, addr := range s.cfg.Join {
			self, err := api.NewClient(addr, "", nil).ClusterSelf(ctx)
			if err != nil {
				continue
			}
			existing = existing || self.HasState
			if self.Name != s.cfg.Name {
				found[self.Name] = *self
			}
		}
		switch {
		case existing && s.keyring.Load() != nil:
			s.log.Info("the cluster has formed; waiting for its leader")
			return nil
		case existing:
			s.log.Info("a peer already belongs to a cluster; joining it")
			return s.join(ctx)
		case len(found) == s.cfg.BootstrapExpect:
			done, err := s.found(ctx, found)
			if done || err != nil {
				return err
			}
		case len(found) > s.cfg.BootstrapExpect && logged%20 == 0:
			s.log.Error("more servers than --bootstrap-expect are reachable; refusing to guess the founders", "found", len(found), "expect", s.cfg.BootstrapExpect)
		case logged%20 == 0:
			s.log.Info("waiting for peers to form the cluster", "found", len(found), "expect", s.cfg.BootstrapExpect)
		}
		if err := sleep(ctx, retryEvery/5); err != nil {
			return err
		}
	}
}

// found takes one step of formation among the founders and reports
// whether this server is done forming.
func (s *Server) found(ctx context.Context, founders map[string]api.Self) (bool, error) {
	names := make([]string, 0, len(founders))
	for n := range founders {
		names = append(names, n)
	}
	slices.Sort(names)
	seed := names[0]
	s.peersMu.Lock()
	for _, n := range names {
		s.peers[n] = founders[n].APIAddr
	}
	s.peersMu.Unlock()

	if seed != s.cfg.Name {
		if s.keyring.Load() == nil {
			k, err := fetchKeyring(ctx, founders[seed].APIAddr, s.cfg.JoinToken)
			if err != nil {
				s.log.Debug("waiting for the keyring", "from", seed, "err", err)
				return false, nil
			}
			return false, s.setKeyring(k)
		}
		return false, nil
	}
	if err := s.ensureKeyring(); err != nil {
		return false, err
	}
	var servers []raft.Server
	for _, n := range names {
		if !founders[n].HasKeyring && n != s.cfg.Name {
			return false, nil // not everyone has the keyring yet
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(n), Address: raft.ServerAddress(founders[n].RaftAddr), Suffrage: raft.Voter})
	}
	s.log.Info("bootstrapping the cluster", "founders", names)
	return true, s.node.Bootstrap(servers)
}

func fetchKeyring(ctx context.Context, addr, token string) (*secrets.Keyring, error) {
	var out api.JoinResponse
	if _, err := api.NewClient(addr, token, nil).Do(ctx, "GET", "/v1/cluster/keyring", nil, &out); err != nil {
		return nil, err
	}
	return secrets.Parse(out.Keyring)
}

// join asks the servers in --join to add this one, and takes the keyring
// they hand back. A refusal for lack of rights is fatal: retrying cannot fix
// a wrong token.
func (s *Server) join(ctx context.Context) error {
	req := api.JoinRequest{Name: s.cfg.Name, RaftAddr: s.cfg.RaftAdvertise, APIAddr: s.cfg.Advertise}
	for attempt := 0; ; attempt++ {
		var lastErr error
		for _, addr := range s.cfg.Join {
			resp, err := api.NewClient(addr, s.cfg.JoinToken, nil).ClusterJoin(ctx, req)
			if err != nil {
				if api.IsCode(err, api.CodeUnauthorized) || api.IsCode(err, api.CodeForbidden) || api.IsCode(err, api.CodeConflict) || api.IsCode(err, api.CodeBadRequest) {
					return fmt.Errorf("join through %s refused: %w (pass an admin token with --join-token)", addr, err)
				}
				lastErr = err
				continue
			}
			k, err := secrets.Parse(resp.Keyring)
			if err != nil {
				return fmt.Errorf("join through %s: %w", addr, err)
			}
			if err := s.setKeyring(k); err != nil {
				return err
			}
			s.log.Info("joined the cluster", "through", addr)
			return nil
		}
		if attempt%20 == 0 {
			s.log.Info("waiting to join", "join", s.cfg.Join, "err", lastErr)
		}
		if err := sleep(ctx, retryEvery); err != nil {
			return err
		}
	}
}

// leaderLoop turns leadership changes into leader-only work.
func (s *Server) leaderLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-s.node.LeaderCh():
			s.leaderReady.Store(false)
			s.stopDeployer()
			if leader {
				if err := s.establishLeadership(ctx); err != nil {
					s.log.Warn("leader setup incomplete", "err", err)
				}
				s.startDeployer(ctx)
			}
		}
	}
}

// establishLeadership runs once per term won: it waits for the FSM to catch
// up (Barrier), records the servers' API addresses, and on a --dev server
// creates the root token the first time.
func (s *Server) establishLeadership(ctx context.Context) error {
	if err := s.node.Barrier(10 * time.Second); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	s.leaderReady.Store(s.node.IsLeader())
	snap := s.node.FSM().State().Snapshot()
	want := []state.Server{{Name: s.cfg.Name, APIAddr: s.cfg.Advertise, RaftAddr: s.cfg.RaftAdvertise}}
	s.peersMu.Lock()
	servers, _ := s.node.Servers()
	for _, rs := range servers {
		if addr := s.peers[string(rs.ID)]; addr != "" && string(rs.ID) != s.cfg.Name {
			want = append(want, state.Server{Name: string(rs.ID), APIAddr: addr, RaftAddr: string(rs.Address)})
		}
	}
	s.peersMu.Unlock()
	for _, w := range want {
		if have := snap.Server(w.Name); have != nil && *have == w {
			continue
		}
		if _, _, err := s.node.Apply(fsm.ServerUpsert{Server: w}); err != nil {
			return fmt.Errorf("record server %s: %w", w.Name, err)
		}
	}
	if s.cfg.Dev && !snap.ACLBootstrapped() {
		return s.devBootstrap()
	}
	return nil
}

// devBootstrap creates the root token of a --dev server and writes it to
// DATA_DIR/root-token (0600).
func (s *Server) devBootstrap() error {
	tok, secret, err := httpapi.BootstrapToken()
	if err != nil {
		return err
	}
	audit := &state.AuditEntry{Time: time.Now().UTC(), Actor: "root", Role: api.RoleAdmin, Action: "cluster.bootstrap", Remote: "local"}
	if _, _, err := s.node.Apply(fsm.ACLBootstrap{Audited: fsm.Audited{Audit: audit}, Token: *tok}); err != nil {
		return fmt.Errorf("create root token: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.cfg.DataDir, rootTokenFile), []byte(secret), 0o600); err != nil {
		return fmt.Errorf("write root token: %w", err)
	}
	s.devTok <- secret
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// startDeployer runs the deployer while this server leads.
func (s *Server) startDeployer(ctx context.Context) {
	if s.runtime == nil {
		return
	}
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	d := deployer.New(deployer.Config{
		Runtime: s.runtime,
		State:   func() *state.Store { return s.node.FSM().State() },
		Apply: func(ctx context.Context, cmd fsm.Command) (uint64, error) {
			_, idx, err := s.node.Apply(cmd)
			return idx, err
		},
		Keyring: func() *secrets.Keyring { return s.keyring.Load() },
		Logger:  s.log.With("component", "deployer"),
		Drain:   time.Duration(s.cfg.Drain),
		RouterAck: func(ctx context.Context, app string, release uint64) error {
			return s.waitRouters(ctx, app, release)
		},
	})
	go func() {
		defer close(done)
		d.Run(dctx)
	}()
	s.deployStop = func() {
		cancel()
		<-done
	}
}

// stopDeployer stops the deployer, if it runs, and waits for it.
func (s *Server) stopDeployer() {
	s.deployMu.Lock()
	defer s.deployMu.Unlock()
	if s.deployStop != nil {
		s.deployStop()
		s.deployStop = nil
	}
}
