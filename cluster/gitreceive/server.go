package gitreceive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// Limits on what one client can hold open before and after authentication.
const (
	handshakeTimeout    = 30 * time.Second
	maxHandshakes       = 64 // concurrent unauthenticated connections
	maxSessionsPerConn  = 4  // git opens one
	processWaitDelay    = 5 * time.Second
	channelPushSlack    = 1 << 20 // protocol bytes around the pack
	pushOverheadBytes   = 4 << 10 // ref update commands of a usual push
	hookReadHeaderLimit = 10 * time.Second
)

// Extension keys under which the authenticated caller is carried from the
// public-key callback to the connection.
const (
	extCallerName   = "berth-caller-name"
	extCallerKeyFP  = "berth-caller-key-fingerprint"
	extCallerTokAcc = "berth-caller-token-accessor"
)

// Server serves git over SSH. Create it with New, then Start and Stop it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	gitPath string

	mu        sync.Mutex
	started   bool
	stopping  bool
	ln        net.Listener
	conns     map[net.Conn]struct{} // open connections, authenticated or not
	pushes    map[string]*push      // by tokenKey(token)
	deploying map[string]bool       // apps with a deploy running
	wg        sync.WaitGroup        // every goroutine the server starts

	baseCtx    context.Context
	cancel     context.CancelFunc
	sshCfg     *gossh.ServerConfig
	handshakes chan struct{}
	hookDir    string
	hookSocket string
	hookSrv    *http.Server
	stopOnce   sync.Once
}

// New checks cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("gitreceive needs git installed: %w", err)
	}
	if gitPath, err = filepath.Abs(gitPath); err != nil {
		return nil, fmt.Errorf("gitreceive: %w", err)
	}
	return &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		gitPath:    gitPath,
		conns:      map[net.Conn]struct{}{},
		pushes:     map[string]*push{},
		deploying:  map[string]bool{},
		handshakes: make(chan struct{}, maxHandshakes),
	}, nil
}

// Start loads (or creates) the host key, opens the hook socket and starts
// listening for SSH connections. ctx bounds the start only; the server
// runs until Stop.
func (s *Server) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopping {
		return errors.New("gitreceive: server already started or stopped")
	}
	s.started = true
	signer, err := loadOrCreateHostKey(s.cfg.HostKeyPath)
	if err != nil {
		return fmt.Errorf("gitreceive: %w", err)
	}
	s.sshCfg = &gossh.ServerConfig{
		PublicKeyCallback: s.authenticate,
		AuthLogCallback:   s.logAuth,
		ServerVersion:     "SSH-2.0-berth",
	}
	s.sshCfg.AddHostKey(signer)

	// The hook socket lives in a fresh 0700 directory, so only this user
	// can reach it; the per-push token says which push is calling.
	if s.hookDir, err = os.MkdirTemp("", "berth-git-hook-"); err != nil {
		return fmt.Errorf("gitreceive: hook socket directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(s.hookDir)
		}
	}()
	s.hookSocket = filepath.Join(s.hookDir, "hook.sock")
	var lc net.ListenConfig
	hookLn, err := lc.Listen(ctx, "unix", s.hookSocket)
	if err != nil {
		return fmt.Errorf("gitreceive: hook socket: %w", err)
	}
	if err := os.Chmod(s.hookSocket, 0o600); err != nil {
		hookLn.Close()
		return fmt.Errorf("gitreceive: hook socket: %w", err)
	}
	s.ln, err = lc.Listen(ctx, "tcp", s.cfg.Bind)
	if err != nil {
		hookLn.Close()
		return fmt.Errorf("gitreceive: listen on %s: %w", s.cfg.Bind, err)
	}

	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+hookDeployPath, s.handleDeploy)
	s.hookSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: hookReadHeaderLimit,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.wg.Go(func() {
		if err := s.hookSrv.Serve(hookLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("hook socket server stopped", "err", err)
		}
	})
	ln := s.ln
	s.wg.Go(func() { s.acceptLoop(ln) })
	s.log.Info("git server listening", "addr", s.ln.Addr().String(), "repos", s.cfg.ReposDir,
		"host_key", gossh.FingerprintSHA256(signer.PublicKey()))
	return nil
}

// Addr is the address the SSH listener is bound to ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop closes the listener and every connection, kills running git
// processes (and their hooks), cancels running deploys and waits for all of
// the server's goroutines, or for ctx. It is safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		if s.cancel != nil {
			s.cancel()
		}
		if s.ln != nil {
			s.ln.Close()
		}
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		if s.hookSrv != nil {
			s.hookSrv.Close()
		}
	})
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("gitreceive: stop: %w", ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hookDir != "" {
		if err := os.RemoveAll(s.hookDir); err != nil {
			return fmt.Errorf("gitreceive: stop: %w", err)
		}
		s.hookDir = ""
	}
	return nil
}

// spawn runs f in a goroutine Stop waits for, unless the server is
// stopping.
func (s *Server) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Go(f)
	return true
}

func (s *Server) acceptLoop(ln net.Listener) {
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.baseCtx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: wait and retry.
			s.log.Warn("accept failed", "err", err)
			select {
			case <-time.After(backoff):
			case <-s.baseCtx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !s.spawn(func() { s.handleConn(nc) }) {
			nc.Close()
			return
		}
	}
}

// authenticate is the public-key callback: Auth decides who the key
// belongs to. The result is used only if the client then proves it holds
// the key.
func (s *Server) authenticate(meta gossh.ConnMetadata, key gossh.PublicKey) (*gossh.Permissions, error) {
	c, err := s.cfg.Auth.Authenticate(key)
	if err != nil {
		return nil, err
	}
	if c.KeyFingerprint == "" {
		c.KeyFingerprint = gossh.FingerprintSHA256(key)
	}
	return &gossh.Permissions{Extensions: map[string]string{
		extCallerName:   c.Name,
		extCallerKeyFP:  c.KeyFingerprint,
		extCallerTokAcc: c.TokenAccessor,
	}}, nil
}

func (s *Server) logAuth(meta gossh.ConnMetadata, method string, err error) {
	if err != nil && method != "none" {
		s.log.Info("ssh authentication failed", "remote", meta.RemoteAddr().String(),
			"user", meta.User(), "method", method, "err", err)
	}
}

func callerOf(p *gossh.Permissions) Caller {
	if p == nil {
		return Caller{}
	}
	return Caller{
		Name:           p.Extensions[extCallerName],
		KeyFingerprint: p.Extensions[extCallerKeyFP],
		TokenAccessor:  p.Extensions[extCallerTokAcc],
	}
}

// handleConn runs one SSH connection: handshake, then sessions until the
// client or Stop closes it.
func (s *Server) handleConn(nc net.Conn) {
	// Tracked from the start, so that Stop also ends handshakes.
	if !s.trackConn(nc, true) {
		nc.Close()
		return
	}
	defer s.trackConn(nc, false)
	select {
	case s.handshakes <- struct{}{}:
	default:
		s.log.Warn("too many unauthenticated connections; dropping one", "remote", nc.RemoteAddr().String())
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sconn, chans, reqs, err := gossh.NewServerConn(nc, s.sshCfg)
	<-s.handshakes
	if err != nil {
		s.log.Debug("ssh handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	_ = nc.SetDeadline(time.Time{})
	caller := callerOf(sconn.Permissions)
	remote := sconn.RemoteAddr().String()

	ctx, cancel := context.WithCancel(s.baseCtx)
	defer cancel()
	var sessions sync.WaitGroup
	// Global requests (tcpip-forward, keepalives, ...): all refused.
	sessions.Go(func() { gossh.DiscardRequests(reqs) })
	var active atomic.Int32
	for newCh := range chans {
		if newCh.ChannelType() != "session" {
			s.log.Info("refused ssh channel", "remote", remote, "caller", caller.Name, "type", newCh.ChannelType())
			_ = newCh.Reject(gossh.Prohibited, "berth serves only git over ssh; port forwarding and other channels are disabled")
			continue
		}
		if active.Add(1) > maxSessionsPerConn {
			active.Add(-1)
			_ = newCh.Reject(gossh.ResourceShortage, "too many sessions on one connection")
			continue
		}
		sessions.Go(func() {
			defer active.Add(-1)
			s.handleSession(ctx, caller, remote, newCh)
		})
	}
	// The connection is gone: kill whatever it was running.
	cancel()
	sconn.Close()
	sessions.Wait()
}

func (s *Server) trackConn(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.stopping {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}
