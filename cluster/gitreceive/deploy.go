package gitreceive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// The hook socket protocol. The hook POSTs the tar of the pushed commit to
// hookDeployPath with "Expect: 100-continue", so that it starts git archive
// only once the server has accepted the deploy. The answer is a stream of
// JSON lines (hookFrame): progress, then one final frame with Done or
// Error. A refusal before the deploy starts is a non-2xx status with one
// Error frame.
const (
	hookDeployPath = "/v1/deploy"
	headerApp      = "Berth-App"
	headerBranch   = "Berth-Branch"
	headerCommit   = "Berth-Commit"
)

// hookFrame is one line of the hook socket's answer.
type hookFrame struct {
	Out   string `json:"out,omitempty"`
	Done  bool   `json:"done,omitempty"`
	Error string `json:"error,omitempty"`
}

// commitRe matches a full SHA-1 or SHA-256 object name.
var commitRe = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)

// push is a running git receive-pack that its hook may call back about.
type push struct {
	ctx      context.Context // canceled when receive-pack's session ends
	app      string
	caller   Caller
	branches []string

	mu       sync.Mutex
	deployed bool // one deploy per push
}

// tokenKey is the map key of a push token: its hash, so that looking a
// token up does not compare secrets byte by byte.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (s *Server) addPush(token string, p *push) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes[tokenKey(token)] = p
}

func (s *Server) removePush(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pushes, tokenKey(token))
}

func (s *Server) lookupPush(token string) *push {
	if token == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushes[tokenKey(token)]
}

// lockApp marks a deploy of app as running; false if one already is.
func (s *Server) lockApp(app string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deploying[app] {
		return false
	}
	s.deploying[app] = true
	return true
}

func (s *Server) unlockApp(app string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.deploying, app)
}

// handleDeploy is the server side of the hook: it checks the push token
// and runs the Pipeline, streaming its output back to the hook.
func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, format string, args ...any) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(hookFrame{Error: fmt.Sprintf(format, args...)})
	}
	// Handlers are goroutines of http.Server, which Stop closes but does
	// not wait for; count them so Stop waits for running deploys.
	if !s.spawnInline(func() { s.deploy(w, r, refuse) }) {
		refuse(http.StatusServiceUnavailable, "the berth git server is stopping; push again later")
	}
}

func (s *Server) deploy(w http.ResponseWriter, r *http.Request, refuse func(int, string, ...any)) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p := s.lookupPush(token)
	if p == nil {
		s.log.Warn("hook call with an unknown token")
		refuse(http.StatusUnauthorized, "this push is not known to the berth server (it may have ended)")
		return
	}
	app, branch, commit := r.Header.Get(headerApp), r.Header.Get(headerBranch), r.Header.Get(headerCommit)
	switch {
	case app != p.app:
		refuse(http.StatusBadRequest, "the push token is for %s, not %s", p.app, clip(sanitize(app)))
		return
	case !slices.Contains(p.branches, branch):
		refuse(http.StatusBadRequest, "branch %s does not deploy %s", clip(sanitize(branch)), p.app)
		return
	case !commitRe.MatchString(commit):
		refuse(http.StatusBadRequest, "invalid commit %q", clip(sanitize(commit)))
		return
	}
	p.mu.Lock()
	again := p.deployed
	p.deployed = true
	p.mu.Unlock()
	if again {
		refuse(http.StatusConflict, "this push already deployed once")
		return
	}
	if !s.lockApp(app) {
		refuse(http.StatusConflict, "a deploy of %s is in progress; push again when it finishes", app)
		return
	}
	defer s.unlockApp(app)

	// The deploy ends when the hook goes away (its request is canceled or
	// a progress write fails), when git receive-pack's session ends
	// (connection lost, git push killed), or when the server stops.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	stop := context.AfterFunc(p.ctx, func() { cancel(errors.New("the push ended")) })
	defer stop()
	stopBase := context.AfterFunc(s.baseCtx, func() { cancel(errors.New("the berth git server is stopping")) })
	defer stopBase()

	rc := http.NewResponseController(w)
	// Progress goes out while the tar is still coming in.
	if err := rc.EnableFullDuplex(); err != nil {
		refuse(http.StatusInternalServerError, "internal error: %v", err)
		return
	}
	// Read before writing anything: the first read sends "100 Continue",
	// which is what makes the hook start git archive.
	var first [1]byte
	n, err := r.Body.Read(first[:])
	if err != nil && !errors.Is(err, io.EOF) {
		s.log.Info("hook went away before sending the source", "app", app, "err", err)
		return
	}
	source := io.MultiReader(bytes.NewReader(first[:n]), r.Body)

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	out := &frameWriter{w: w, rc: rc, cancel: cancel}
	_ = out.flush()
	log := s.log.With("app", app, "branch", branch, "commit", commit, "caller", p.caller.Name)
	log.Info("deploy started")
	began := time.Now()
	err = s.cfg.Pipeline.Deploy(ctx, DeployRequest{
		App: app, Branch: branch, Commit: commit, Caller: p.caller, Source: source,
	}, out)
	if err == nil && ctx.Err() != nil {
		// A Pipeline that ignored cancellation must not report success of
		// a push that is gone.
		err = context.Cause(ctx)
	}
	if err != nil {
		log.Warn("deploy failed", "err", err, "duration", time.Since(began).Round(time.Millisecond), "cause", context.Cause(ctx))
	} else {
		log.Info("deploy finished", "duration", time.Since(began).Round(time.Millisecond))
	}
	out.finish(err)
}

// frameWriter is the out writer given to Pipeline.Deploy: each Write is
// sent to the hook as one frame and flushed at once. Writes after Deploy
// returned fail; a failed write means the hook is gone and cancels the
// deploy.
type frameWriter struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	rc     *http.ResponseController
	cancel context.CancelCauseFunc
	closed bool
	err    error
}

func (f *frameWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, errors.New("deploy output closed: Deploy has returned")
	}
	if f.err != nil {
		return 0, f.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.writeFrame(hookFrame{Out: string(p)}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// writeFrame sends one frame; f.mu is held.
func (f *frameWriter) writeFrame(fr hookFrame) error {
	b, err := json.Marshal(fr)
	if err != nil {
		return err
	}
	if _, err := f.w.Write(append(b, '\n')); err != nil {
		return f.fail(err)
	}
	if err := f.rc.Flush(); err != nil {
		return f.fail(err)
	}
	return nil
}

func (f *frameWriter) fail(err error) error {
	f.err = fmt.Errorf("the pushing client went away: %w", err)
	f.cancel(f.err)
	return f.err
}

func (f *frameWriter) flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.rc.Flush(); err != nil {
		return f.fail(err)
	}
	return nil
}

// finish sends the final frame and closes the writer.
func (f *frameWriter) finish(deployErr error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	if f.err != nil {
		return
	}
	if deployErr != nil {
		_ = f.writeFrame(hookFrame{Error: deployErr.Error()})
		return
	}
	_ = f.writeFrame(hookFrame{Done: true})
}

// spawnInline runs f on the calling goroutine but counts it as one of the
// server's goroutines, so Stop waits for it; false if the server is
// stopping.
func (s *Server) spawnInline(f func()) bool {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	f()
	return true
}
