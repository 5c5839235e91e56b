// Package scheduler turns releases and formations into running instances.
//
// A Runtime runs instances of an app's releases side by side (blue-green):
// the deployer in cluster/ starts the new release, waits until every new
// instance passes its health check (run from outside the container), hands
// over to the router, and only then stops the old release, draining it
// first. Two runtimes implement the interface and pass one conformance
// suite (scheduler/runtimetest): docker (one host, the default of
// `berth server --dev`) and nomad (many hosts, with Consul discovery).
//
// This package imports nothing of berth's: its inputs are plain values.
package scheduler

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"
)

// Check types.
const (
	CheckHTTP = "http"
	CheckTCP  = "tcp"
	CheckNone = "none"
)

// Check is a health check run from outside the instance.
type Check struct {
	Type     string        // CheckHTTP, CheckTCP or CheckNone
	Path     string        // for CheckHTTP, e.g. "/" or "/healthz"
	Interval time.Duration // between checks
	Timeout  time.Duration // of one check
}

// DefaultCheck is the check of a process type that sets none: web gets an
// HTTP check of "/" (any 2xx or 3xx passes), others none.
func DefaultCheck(process string) Check {
	if process == "web" {
		return Check{Type: CheckHTTP, Path: "/", Interval: time.Second, Timeout: 2 * time.Second}
	}
	return Check{Type: CheckNone}
}

// Process is one process type of a release with its formation.
type Process struct {
	Name string
	// Command runs with /bin/sh -c inside the image; "" runs the image's CMD.
	Command  string
	Count    int
	MemoryMB int // 0: runtime default (256)
	CPU      int // MHz; 0: runtime default (100)
	Check    Check
}

// Release is what a runtime runs: one version of an app.
type Release struct {
	App     string
	Version uint64
	// Image is pinned by digest (REGISTRY/APP@sha256:...).
	Image string
	// Env is the app's config; the runtime adds PORT (5000) for every process.
	Env       map[string]string
	Processes []Process
	// KillTimeout is how long an instance gets between SIGTERM and SIGKILL
	// (default 10 s).
	KillTimeout time.Duration
}

// Port is the port every instance listens on inside its container ($PORT).
const Port = 5000

// Instance states.
const (
	StatePending  = "pending"
	StateRunning  = "running"
	StateStopping = "stopping"
	StateExited   = "exited"
	StateFailed   = "failed"
)

// Instance is one running (or starting, or dead) copy of a process.
type Instance struct {
	ID      string
	App     string
	Process string
	Index   int // 1-based: web.1, web.2
	Release uint64
	Node    string
	State   string
	// Healthy is true once the instance passes its check (or runs, for
	// processes without a check).
	Healthy bool
	// Addr is host:port where routers reach the instance ("" if none).
	Addr      string
	StartedAt time.Time
	// Message is the last check failure or exit reason.
	Message string
}

// Name renders the instance as users see it: "web.1".
func (i Instance) Name() string { return i.Process + "." + strconv.Itoa(i.Index) }

// LogOptions select log lines.
type LogOptions struct {
	Process string // "" for all
	Tail    int    // last N lines per instance; 0 for all
	Since   time.Time
	Follow  bool
}

// LogLine is one line of an instance's output.
type LogLine struct {
	Time     time.Time
	Instance string // "web.1"
	Text     string
}

// RunOptions describe a one-off command.
type RunOptions struct {
	Command []string // argv, run without a shell
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Detach  bool
}

// Errors of runtimes.
var (
	ErrNotFound    = errors.New("not found")
	ErrUnavailable = errors.New("runtime unavailable")
)

// Runtime runs releases.
type Runtime interface {
	// Name is "docker" or "nomad".
	Name() string
	// Start makes rel's instances exist with its formation, next to other
	// releases' instances of the app. It returns once they are submitted;
	// Instances reports their progress. Starting a release that already
	// runs converges it to rel's formation (idempotent).
	Start(ctx context.Context, rel Release) error
	// Instances lists the app's instances of every release.
	Instances(ctx context.Context, app string) ([]Instance, error)
	// StopRelease removes a release's instances: each leaves discovery
	// first, is left drain to finish in-flight requests, then gets SIGTERM,
	// and SIGKILL after the release's kill timeout.
	StopRelease(ctx context.Context, app string, version uint64, drain time.Duration) error
	// Restart replaces a release's instances (of one process, or all when
	// process is ""), one at a time, each new one healthy before the next
	// old one stops.
	Restart(ctx context.Context, rel Release, process string) error
	// Logs writes the app's log lines to out until ctx ends (when
	// following) or the logs are exhausted.
	Logs(ctx context.Context, app string, opts LogOptions, out func(LogLine)) error
	// Run runs a one-off command with rel's image and config and returns
	// its exit code (or 0 and the instance ID in the returned string when
	// detached).
	Run(ctx context.Context, rel Release, opts RunOptions) (int, error)
	// Destroy removes every instance of the app.
	Destroy(ctx context.Context, app string) error
}
