// Package server assembles one berth control-plane server: the raft member,
// the state store, the keyring, the HTTP API, and the background work of
// forming or joining a cluster and of being leader.
//
// Start order: data dir → keyring (if any) → FSM + raft → HTTP listener →
// bootstrap/formation/join → leader loop. Stop runs it backwards and may be
// called more than once.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/gitreceive"
	"github.com/berthpaas/berth/cluster/httpapi"
	"github.com/berthpaas/berth/cluster/raftnode"
	"github.com/berthpaas/berth/cluster/registry"
	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/internal/version"
	"github.com/berthpaas/berth/scheduler"
	"github.com/docker/docker/client"
	"github.com/prometheus/client_golang/prometheus"
)

// Server is one running control-plane server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	node    *raftnode.Node
	api     *httpapi.API
	http    *http.Server
	ln      net.Listener
	keyring atomic.Pointer[secrets.Keyring]
	// leaderReady is true while this server is leader and has applied
	// everything committed before its term.
	leaderReady atomic.Bool

	// peers are the API addresses learnt while forming a cluster, used
	// until the state store records them.
	peersMu sync.Mutex
	peers   map[string]string

	// Builds: nil when this server runs none.
	docker   *client.Client
	registry *registry.Registry
	git      *gitreceive.Server
	// runtime runs releases; the deployer drives it while this server leads.
	runtime    runtimeCloser
	deployMu   sync.Mutex
	deployStop func()

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errCh   chan error
	stopped sync.Once
	devTok  chan string
}

// Files in the data dir.
const (
	keyringFile   = "keyring"
	rootTokenFile = "root-token"
)

// New validates cfg and prepares a server; Start runs it.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: log.With("server", cfg.Name), peers: map[string]string{}, errCh: make(chan error, 1), devTok: make(chan string, 1)}, nil
}

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// APIAddr is the address the HTTP API listens on.
func (s *Server) APIAddr() string { return s.ln.Addr().String() }

// Err reports a fatal background failure (e.g. a refused join).
func (s *Server) Err() <-chan error { return s.errCh }

// Start opens raft and the API and begins forming or joining the cluster.
func (s *Server) Start(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	kpath := filepath.Join(s.cfg.DataDir, keyringFile)
	if k, err := secrets.Load(kpath); err == nil {
		s.keyring.Store(k)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}

	reg := prometheus.NewRegistry()
	applyHist := httpapi.ApplyHistogram(reg)
	f, err := fsm.New(s.log)
	if err != nil {
		return err
	}
	rc := s.cfg.Raft
	node, err := raftnode.Open(raftnode.Config{
		Name: s.cfg.Name, Dir: filepath.Join(s.cfg.DataDir, "raft"), Bind: s.cfg.RaftBind, Advertise: s.cfg.RaftAdvertise,
		HeartbeatTimeout: time.Duration(rc.HeartbeatTimeout), ElectionTimeout: time.Duration(rc.ElectionTimeout),
		LeaderLeaseTimeout: time.Duration(rc.LeaderLeaseTimeout), SnapshotThreshold: rc.SnapshotThreshold,
		SnapshotInterval: time.Duration(rc.SnapshotInterval), TrailingLogs: rc.TrailingLogs,
		Logger: s.log, OnApply: func(d time.Duration) { applyHist.Observe(d.Seconds()) },
	}, f)
	if err != nil {
		return err
	}
	s.node = node
	if node.HasState() && s.keyring.Load() == nil {
		node.Shutdown()
		return fmt.Errorf("%s has raft state but no keyring file %s: copy it from another server of the cluster", s.cfg.DataDir, kpath)
	}

	rt, err := s.startRuntime(ctx)
	if err != nil {
		s.Stop()
		return err
	}
	pipeline, err := s.startBuilds(ctx)
	if err != nil {
		s.Stop()
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Bind)
	if err != nil {
		s.Stop()
		return fmt.Errorf("API listener on %s: %w", s.cfg.Bind, err)
	}
	s.ln = ln
	apiCfg := httpapi.Config{
		Name: s.cfg.Name, APIAddr: s.cfg.Advertise, Node: node, Keyring: &s.keyring, BootstrapExpect: s.cfg.BootstrapExpect,
		Peers: s.peer, LeaderReady: s.leaderReady.Load, MaxBody: s.cfg.MaxBodyBytes, MaxUpload: s.cfg.Build.MaxPushBytes,
		Registry: reg, Logger: s.log, Version: version.Version,
	}
	if pipeline != nil {
		apiCfg.Builds, apiCfg.GitHost = pipeline, s.cfg.GitAdvertise
	}
	if rt != nil {
		apiCfg.Runtime, apiCfg.MaxScale = rt, s.cfg.MaxScale
	}
	apiCfg.AppsDomain = s.cfg.AppsDomain
	if s.cfg.AppsDomain != "" {
		apiCfg.WebScheme, apiCfg.WebPort, _ = s.cfg.appsScheme()
	}
	s.api = httpapi.New(apiCfg)
	if pipeline != nil {
		if err := s.startGit(ctx, pipeline); err != nil {
			s.Stop()
			return err
		}
	}
	s.http = &http.Server{
		Handler: s.api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("API server: %w", err))
		}
	}()
	go func() {
		defer s.wg.Done()
		s.leaderLoop(bg)
	}()

	switch {
	case node.HasState():
		s.log.Info("raft state found; rejoining the cluster", "data_dir", s.cfg.DataDir)
	case s.cfg.BootstrapExpect == 1:
		if err := s.bootstrapSingle(); err != nil {
			s.Stop()
			return err
		}
	case s.cfg.BootstrapExpect > 1:
		s.background(bg, s.form)
	default:
		s.background(bg, s.join)
	}
	return nil
}

// background runs f in a goroutine owned by the server; its error is fatal.
func (s *Server) background(ctx context.Context, f func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(ctx); err != nil && ctx.Err() == nil {
			s.fail(err)
		}
	}()
}

func (s *Server) fail(err error) {
	s.log.Error("server failed", "err", err)
	select {
	case s.errCh <- err:
	default:
	}
}

func (s *Server) peer(name string) string {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	return s.peers[name]
}

// ensureKeyring generates and saves a keyring if the server has none.
func (s *Server) ensureKeyring() error {
	if s.keyring.Load() != nil {
		return nil
	}
	k, err := secrets.Generate()
	if err != nil {
		return err
	}
	return s.setKeyring(k)
}

func (s *Server) setKeyring(k *secrets.Keyring) error {
	if err := k.Save(filepath.Join(s.cfg.DataDir, keyringFile)); err != nil {
		return err
	}
	s.keyring.Store(k)
	return nil
}

// WaitForLeader blocks until the server knows a leader.
func (s *Server) WaitForLeader(ctx context.Context) error {
	_, err := s.node.WaitForLeader(ctx)
	return err
}

// DevRootToken waits for the root token a --dev server creates for itself
// the first time it starts. ok is false if it was created by an earlier run
// (it is in the root-token file).
func (s *Server) DevRootToken(ctx context.Context) (token string, ok bool, err error) {
	if b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, rootTokenFile)); err == nil {
		return string(b), false, nil
	}
	select {
	case t := <-s.devTok:
		return t, true, nil
	case <-ctx.Done():
		return "", false, fmt.Errorf("waiting for the dev root token: %w", ctx.Err())
	}
}

// Stop shuts the server down: API, background work, then raft.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.http.Shutdown(ctx)
			cancel()
		}
		if s.cancel != nil {
			s.cancel()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if s.git != nil {
			s.git.Stop(ctx)
		}
		if s.registry != nil {
			s.registry.Stop(ctx)
		}
		if s.docker != nil {
			s.docker.Close()
		}
		s.wg.Wait()
		s.stopDeployer()
		if s.runtime != nil {
			s.runtime.Close()
		}
		if s.node != nil {
			if err := s.node.Shutdown(); err != nil {
				s.log.Warn("raft shutdown", "err", err)
			}
		}
	})
}

// runtimeCloser is a runtime this server owns and closes.
type runtimeCloser interface {
	scheduler.Runtime
	Close() error
}
