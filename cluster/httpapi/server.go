package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/forward"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/raftnode"
	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/berthpaas/berth/scheduler"
	"github.com/hashicorp/go-memdb"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxBody is the largest request body accepted (1 MiB).
const DefaultMaxBody = 1 << 20

// Config wires the API to the server's parts.
type Config struct {
	Name    string // this server's name
	APIAddr string // this server's advertised API address
	Node    *raftnode.Node
	// Keyring holds the cluster keyring once this server has one.
	Keyring *atomic.Pointer[secrets.Keyring]
	// BootstrapExpect is reported by /v1/cluster/self for peer discovery.
	BootstrapExpect int
	// Peers returns the API address of a server by name when the state store
	// does not know it yet (during cluster formation).
	Peers   func(name string) string
	MaxBody int64
	// MaxUpload bounds uploaded build sources (default 1 GiB).
	MaxUpload int64
	// Builds runs builds and image imports on this server; nil disables them.
	Builds Builds
	// GitHost is host:port of this server's git endpoint, for remotes.
	GitHost string
	// Runtime runs releases (on the leader); nil when none is configured.
	Runtime scheduler.Runtime
	// MaxScale caps one process type's count (default 100).
	MaxScale int
	// AppsDomain gives every app the host APP.<AppsDomain> on the routers.
	AppsDomain string
	// WebScheme ("http" or "https") and WebPort (":8080", or "" for the
	// scheme's default) complete apps' web URLs; "" scheme: no URL shown.
	WebScheme, WebPort string
	Registry           *prometheus.Registry
	Logger             *slog.Logger
	Version            string
	// LeaderReady reports whether this server, if leader, has caught its
	// state up with everything committed before its term (raft Barrier). A
	// new leader must not answer from older state.
	LeaderReady func() bool
	// LeaderWait bounds how long a request waits for an election before
	// failing with 503.
	LeaderWait time.Duration
}

// API is the HTTP handler of one server.
type API struct {
	cfg     Config
	mux     *http.ServeMux
	fwd     *forward.Forwarder
	metrics *metrics
	log     *slog.Logger
	// routerLogs holds the access-log lines routers shipped here.
	routerLogs *routerLogs
}

// New builds the API handler.
func New(cfg Config) *API {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = 1 << 30
	}
	if cfg.LeaderWait == 0 {
		cfg.LeaderWait = 3 * time.Second
	}
	a := &API{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, routerLogs: newRouterLogs()}
	a.fwd = forward.New(cfg.Name, a.signer, cfg.Logger)
	a.metrics = newMetrics(cfg.Registry, cfg.Node)
	a.routes()
	return a
}

func (a *API) signer() forward.Signer {
	if k := a.cfg.Keyring.Load(); k != nil {
		return k
	}
	return nil
}

func (a *API) routes() {
	// Cluster.
	a.handle("GET /v1/cluster/self", local, a.clusterSelf)
	a.handle("GET /v1/cluster/status", local, a.clusterStatus)
	a.handle("POST /v1/cluster/bootstrap", write, a.clusterBootstrap)
	a.handle("GET /v1/cluster/keyring", local, a.clusterKeyring)
	a.handle("POST /v1/cluster/members", write, a.clusterJoin)
	a.handle("DELETE /v1/cluster/members/{name}", write, a.clusterRemove)
	a.handle("POST /v1/cluster/snapshot", local, a.clusterSnapshot)
	a.mux.Handle("GET /v1/metrics", a.metrics.handler())
	// Apps and config.
	a.handle("GET /v1/apps", read, a.appsList)
	a.handle("POST /v1/apps", write, a.appsCreate)
	a.handle("GET /v1/apps/{app}", read, a.appsGet)
	a.handle("DELETE /v1/apps/{app}", write, a.appsDestroy)
	a.handle("GET /v1/apps/{app}/config", read, a.configGet)
	a.handle("PATCH /v1/apps/{app}/config", write, a.configUpdate)
	a.handle("PATCH /v1/apps/{app}", write, a.appsUpdate)
	// Releases, builds and keys.
	a.handle("GET /v1/apps/{app}/releases", read, a.releasesList)
	a.handle("GET /v1/apps/{app}/releases/{version}", read, a.releasesGet)
	a.handle("POST /v1/apps/{app}/releases", local, a.releasesImportImage)
	a.handle("POST /v1/apps/{app}/rollback", write, a.releasesRollback)
	a.handle("GET /v1/apps/{app}/builds", read, a.buildsList)
	a.handle("GET /v1/apps/{app}/builds/{id}", read, a.buildsGet)
	a.handleLimit("POST /v1/apps/{app}/builds", local, a.cfg.MaxUpload, a.buildsUpload)
	a.handle("GET /v1/apps/{app}/instances", read, a.instancesList)
	a.handle("POST /v1/apps/{app}/formation", write, a.formationScale)
	a.handle("PUT /v1/apps/{app}/checks/{process}", write, a.checksSet)
	a.handle("GET /v1/apps/{app}/deploys", read, a.deploysList)
	a.handle("POST /v1/apps/{app}/restart", write, a.appRestart)
	a.handle("GET /v1/apps/{app}/logs", read, a.appLogs)
	a.handleLimit("POST /v1/apps/{app}/run", write, 1<<30, a.appRun)
	a.handle("GET /v1/apps/{app}/domains", read, a.domainsList)
	a.handle("POST /v1/apps/{app}/domains", write, a.domainsAdd)
	a.handle("DELETE /v1/apps/{app}/domains/{domain}", write, a.domainsRemove)
	// Routers.
	a.handle("GET /v1/routes", read, a.routesGet)
	a.handle("GET /v1/routers", read, a.routersList)
	a.handle("PUT /v1/routers/{id}", write, a.routersReport)
	a.handleLimit("POST /v1/router-logs", write, 4<<20, a.routerLogsShip)
	a.handle("GET /v1/certs", read, a.certsList)
	a.handle("GET /v1/certs/{key...}", read, a.certsGet)
	a.handleLimit("PUT /v1/certs/{key...}", write, 2*api.MaxCertValue, a.certsPut)
	a.handle("DELETE /v1/certs/{key...}", write, a.certsDelete)
	a.handle("POST /v1/cert-locks/{name}", write, a.certLock)
	a.handle("DELETE /v1/cert-locks/{name}", write, a.certUnlock)
	a.handle("GET /v1/keys", read, a.keysList)
	a.handle("POST /v1/keys", write, a.keysAdd)
	a.handle("DELETE /v1/keys/{name}", write, a.keysRemove)
	a.handle("POST /v1/internal/apply", write, a.internalApply)
	// Tokens and audit.
	a.handle("GET /v1/tokens", read, a.tokensList)
	a.handle("GET /v1/tokens/self", read, a.tokensSelf)
	a.handle("POST /v1/tokens", write, a.tokensCreate)
	a.handle("DELETE /v1/tokens/{id}", write, a.tokensRevoke)
	a.handle("GET /v1/audit", read, a.auditList)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &api.Error{Code: api.CodeNotFound, Message: fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path)})
	})
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	a.mux.ServeHTTP(sw, r)
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	a.metrics.observe(route, r.Method, sw.status, time.Since(start))
}

// kind says where a route may be served.
type kind int

const (
	local kind = iota // answered by whichever server receives it
	read              // leader unless ?stale
	write             // leader only
)

// request is what a handler gets: the request, a state snapshot, and a
// lazily resolved identity.
type request struct {
	*http.Request
	api  *API
	snap *state.Snapshot
	// store is the store snap came from, for blocking queries.
	store *state.Store
}

// identity authenticates the caller.
func (r *request) identity() (*auth.Identity, error) {
	return identify(r.Request, r.snap)
}

// require authenticates the caller and checks it may do action on app.
func (r *request) require(action auth.Action, app string) (*auth.Identity, error) {
	id, err := r.identity()
	if err != nil {
		return nil, err
	}
	return id, id.Check(action, app)
}

// audit builds the audit record for a mutating call by id.
func (r *request) audit(id *auth.Identity, action, app, detail string) fsm.Audited {
	e := &state.AuditEntry{Time: time.Now().UTC(), Action: action, App: app, Detail: detail,
		Remote: forward.ClientAddr(r.Request, r.api.signer())}
	if id != nil {
		e.Actor, e.Role = id.Name, id.Role
	}
	return fsm.Audited{Audit: e}
}

// apply replicates a command through raft.
func (r *request) apply(cmd fsm.Command) (any, uint64, error) {
	return r.api.cfg.Node.Apply(cmd)
}

type handlerFunc func(w http.ResponseWriter, r *request) error

func (a *API) handle(pattern string, k kind, h handlerFunc) {
	a.handleLimit(pattern, k, a.cfg.MaxBody, h)
}

// handleLimit registers a route whose request bodies may be up to limit bytes.
func (a *API) handleLimit(pattern string, k kind, limit int64, h handlerFunc) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, hr *http.Request) {
		if hr.ContentLength > limit {
			writeError(w, &http.MaxBytesError{Limit: limit})
			return
		}
		hr.Body = http.MaxBytesReader(w, hr.Body, limit)
		_, stale := hr.URL.Query()["stale"]
		if k == write || (k == read && !stale) {
			if !a.isLeader() {
				a.forward(w, hr)
				return
			}
		}
		store := a.cfg.Node.FSM().State()
		req := &request{Request: hr, api: a, snap: store.Snapshot(), store: store}
		a.setMetaHeaders(w)
		if err := h(w, req); err != nil {
			writeError(w, err)
		}
	})
}

// forward sends hr to the leader. While no leader is known, or the known
// one cannot be reached (it may have just died) or refuses the request
// because it is no longer leader, it retries for up to LeaderWait, then
// answers 503. The body is buffered (it is at most MaxBody)
// so a retry can send it again.
func (a *API) forward(w http.ResponseWriter, hr *http.Request) {
	if forward.IsForwarded(hr) {
		w.Header().Set(forward.HeaderHop, "1") // the forwarding server retries elsewhere
		writeError(w, forward.ErrHop)
		return
	}
	body, err := io.ReadAll(hr.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(hr.Context(), a.cfg.LeaderWait)
	defer cancel()
	last := raftnode.ErrNoLeader
	for {
		hr.Body = io.NopCloser(bytes.NewReader(body))
		if a.isLeader() {
			// We won an election while waiting: serve it ourselves.
			a.mux.ServeHTTP(w, hr)
			return
		}
		if _, id := a.cfg.Node.Leader(); id != "" && id != a.cfg.Name {
			if addr := a.leaderAPIAddr(id); addr != "" {
				err := a.fwd.Forward(w, hr, addr)
				if err == nil {
					return
				}
				last = fmt.Errorf("%w: %v", errLeaderUnreachable, err)
			}
		}
		select {
		case <-ctx.Done():
			writeError(w, fmt.Errorf("no reachable leader within %s: %w", a.cfg.LeaderWait, last))
			return
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// isLeader reports whether this server may serve leader-only requests.
func (a *API) isLeader() bool {
	return a.cfg.Node.IsLeader() && (a.cfg.LeaderReady == nil || a.cfg.LeaderReady())
}

func (a *API) leaderAPIAddr(id string) string {
	if s := a.cfg.Node.FSM().State().Snapshot().Server(id); s != nil {
		return s.APIAddr
	}
	if a.cfg.Peers != nil {
		return a.cfg.Peers(id)
	}
	return ""
}

func (a *API) setMetaHeaders(w http.ResponseWriter) {
	_, leader := a.cfg.Node.Leader()
	w.Header().Set("X-Berth-Known-Leader", strconv.FormatBool(leader != ""))
	st := a.cfg.Node.Stats()
	w.Header().Set("X-Berth-Last-Contact", strconv.FormatInt(max(st.LastContact, 0).Milliseconds(), 10))
}

// maxBlockingWait caps ?wait.
const maxBlockingWait = 5 * time.Minute

// blocking runs query, and if ?index=N is given and the result's index is
// not past N, waits for a change (or ?wait) and runs it again. It writes the
// result with its index header.
func (r *request) blocking(w http.ResponseWriter, query func(ws memdb.WatchSet, snap *state.Snapshot) (any, uint64, error)) error {
	q := r.URL.Query()
	var minIndex uint64
	if s := q.Get("index"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return badRequest("index must be a non-negative integer, not %q", s)
		}
		minIndex = v
	}
	wait := maxBlockingWait
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return badRequest("wait must be a duration like 30s, not %q", s)
		}
		wait = min(d, maxBlockingWait)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	store, snap := r.store, r.snap
	for {
		ws := memdb.NewWatchSet()
		ws.Add(store.AbandonCh())
		out, idx, err := query(ws, snap)
		if err != nil {
			return err
		}
		if idx == 0 {
			idx = 1 // never 0, or clients that pass it back would not block
		}
		if minIndex == 0 || idx > minIndex || ws.WatchCtx(ctx) != nil {
			w.Header().Set("X-Berth-Index", strconv.FormatUint(idx, 10))
			writeJSON(w, http.StatusOK, out)
			return nil
		}
		store = r.api.cfg.Node.FSM().State()
		snap = store.Snapshot()
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
