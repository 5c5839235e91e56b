package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/semaphore"
)

// DefaultAddr is where a registry listens when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:5000"

var (
	// ErrInvalidArgument: a repository name or digest that is not one.
	ErrInvalidArgument = errors.New("registry: invalid argument")
	// ErrStarted: Start was called twice, or after Stop.
	ErrStarted = errors.New("registry: already started")
)

// Config says where a registry keeps its data and where it listens.
type Config struct {
	// Dir is the filesystem storage root (e.g. DATA_DIR/registry). Required;
	// created if missing.
	Dir string
	// Addr is the listen address, e.g. "127.0.0.1:5000"; "127.0.0.1:0"
	// picks a free port. Default DefaultAddr.
	Addr string
	// Logger receives distribution's logs (its per-request lines at Debug).
	// Default: discard.
	Logger *slog.Logger
}

// Registry is one embedded OCI registry. Its methods are safe for concurrent
// use.
type Registry struct {
	dir      string
	addr     string
	log      *slog.Logger
	logEntry *logrus.Entry

	app     *handlers.App
	driver  storagedriver.StorageDriver // for Collect, beside the app's own
	ns      distribution.Namespace      // over driver, deletes enabled
	handler http.Handler

	gate    *semaphore.Weighted
	pending pendingSet

	bound atomic.Pointer[string] // the listener's address once Start has run

	mu        sync.Mutex // serialises Start and Stop
	started   bool
	stopped   bool
	srv       *http.Server
	serveDone chan struct{}
}

// New prepares a registry over cfg.Dir. Nothing listens until Start.
func New(cfg Config) (*Registry, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: Config.Dir is required", ErrInvalidArgument)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("registry: create storage dir: %w", err)
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		dir:      dir,
		addr:     cfg.Addr,
		log:      cfg.Logger,
		logEntry: newLogrusEntry(cfg.Logger),
		gate:     semaphore.NewWeighted(gateWeight),
	}

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("registry: http secret: %w", err)
	}
	if r.app, err = newApp(r.logCtx(context.Background()), distConfig(dir, cfg.Addr, string(secret))); err != nil {
		return nil, err
	}

	r.driver = filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 100})
	if r.ns, err = storage.NewRegistry(r.logCtx(context.Background()), r.driver, storage.EnableDelete); err != nil {
		_ = r.app.Shutdown()
		return nil, fmt.Errorf("registry: storage: %w", err)
	}
	r.handler = http.HandlerFunc(r.serveHTTP)
	return r, nil
}

// distConfig is distribution's configuration for an embedded registry, built
// in code: no file, no environment variables (REGISTRY_*) are read.
func distConfig(dir, addr, secret string) *configuration.Configuration {
	c := &configuration.Configuration{Version: "0.1"}
	c.Log.Level = "warn"            // unused by handlers.App; our logrus entry decides
	c.Log.AccessLog.Disabled = true // only registry.NewRegistry reads it; said for the reader
	c.HTTP.Addr = addr              // names this instance in (unused) notifications
	c.HTTP.Secret = secret          // signs upload state; random per process is fine for one node
	c.HTTP.Headers = http.Header{"X-Content-Type-Options": {"nosniff"}}
	c.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": dir},
		"delete":     configuration.Parameters{"enabled": true},
		// distribution's purger is a goroutine nobody can wait for, and it
		// logs through logrus' global logger; Collect purges instead.
		"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		// No "cache": a blob-descriptor cache would keep answering "present"
		// for blobs Collect has deleted, and a push would skip them.
	}
	// No auth (listens on loopback / a private network), no health checks
	// (they register in a process-global health registry), no Prometheus
	// (global collectors), no notifications, no proxy, no redis.
	return c
}

// newApp turns handlers.NewApp's panics into errors.
func newApp(ctx context.Context, c *configuration.Configuration) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("registry: configure distribution: %v", p)
		}
	}()
	return handlers.NewApp(ctx, c), nil
}

// logCtx makes distribution log through this registry's logger.
func (r *Registry) logCtx(ctx context.Context) context.Context {
	return logContext{Context: ctx, entry: r.logEntry}
}

// Handler is the registry's HTTP handler (/v2/...), for mounting elsewhere.
// It is the same one Start serves: pushes through it also wait for Collect.
func (r *Registry) Handler() http.Handler { return r.handler }

// Start listens on Config.Addr and serves the registry in a goroutine that
// Stop ends. ctx bounds only the listening, not the serving.
func (r *Registry) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return ErrStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.addr)
	if err != nil {
		return fmt.Errorf("registry: listen: %w", err)
	}
	r.started = true
	bound := ln.Addr().String()
	r.bound.Store(&bound)
	r.srv = &http.Server{
		Handler:           r.handler,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		// No read or write timeout: a layer can take minutes either way.
	}
	r.serveDone = make(chan struct{})
	go func() {
		defer close(r.serveDone)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("registry stopped serving", "err", err)
		}
	}()
	r.log.Info("registry listening", "addr", bound, "dir", r.dir)
	return nil
}

// Addr is the address the registry listens on (host:port), or Config.Addr
// before Start.
func (r *Registry) Addr() string {
	if a := r.bound.Load(); a != nil {
		return *a
	}
	return r.addr
}

// Stop stops serving: it waits for requests in flight until ctx is done, then
// closes their connections. It is idempotent, and may be called without Start.
// It also cancels distribution's app context, so whoever mounted Handler
// elsewhere should stop serving it first. Collect, DiskUsage and
// ManifestExists keep working on the storage after Stop.
func (r *Registry) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return nil
	}
	r.stopped = true
	var err error
	if r.srv != nil {
		if err = r.srv.Shutdown(ctx); err != nil {
			err = errors.Join(fmt.Errorf("registry: shutdown: %w", err), r.srv.Close())
		}
		<-r.serveDone
	}
	// Cancels the app's context. The one goroutine handlers.NewApp starts
	// that this cannot end is go-events' Broadcaster (see DESIGN.md).
	if aerr := r.app.Shutdown(); aerr != nil {
		err = errors.Join(err, fmt.Errorf("registry: shutdown app: %w", aerr))
	}
	return err
}

// ManifestExists says whether repo holds the manifest digest.
func (r *Registry) ManifestExists(ctx context.Context, repo, dgst string) (bool, error) {
	named, err := reference.WithName(repo)
	if err != nil {
		return false, fmt.Errorf("%w: repository %q: %v", ErrInvalidArgument, repo, err)
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return false, fmt.Errorf("%w: digest %q: %v", ErrInvalidArgument, dgst, err)
	}
	ctx = r.logCtx(ctx)
	rp, err := r.ns.Repository(ctx, named)
	if err != nil {
		return false, fmt.Errorf("registry: repository %s: %w", repo, err)
	}
	ms, err := rp.Manifests(ctx)
	if err != nil {
		return false, fmt.Errorf("registry: repository %s: %w", repo, err)
	}
	ok, err := ms.Exists(ctx, d)
	if err != nil {
		return false, fmt.Errorf("registry: manifest %s@%s: %w", repo, d, err)
	}
	return ok, nil
}

// DiskUsage is the size in bytes of the files under Config.Dir.
func (r *Registry) DiskUsage() (int64, error) {
	var n int64
	err := filepath.WalkDir(r.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("registry: disk usage: %w", err)
	}
	return n, nil
}
