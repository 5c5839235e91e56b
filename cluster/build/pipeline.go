// Package build is the server's build pipeline: source (a git push or an
// upload) → build context → buildpack or Dockerfile build on the Docker
// engine → image in the embedded registry, pinned by digest → release
// command → an immutable release recorded through raft → image retention.
//
// Every step writes progress lines to the pusher. A failure at any step
// records the build as failed with its reason and output, and creates no
// release: the previous release stays as it is.
package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/buildpacks"
	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/gitreceive"
	"github.com/berthpaas/berth/cluster/httpapi"
	"github.com/berthpaas/berth/cluster/registry"
	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
)

// Defaults of the pipeline.
const (
	DefaultRetain    = 10
	DefaultMaxSource = 1 << 30
	// outputTail is how much of a build's output is kept in the state store.
	outputTail = 64 << 10
)

// Config wires the pipeline to its server.
type Config struct {
	Server string // name of this server, recorded on builds
	// Apply replicates a command from this server and returns its index;
	// WaitApplied waits until the local state has applied an index.
	Apply       func(context.Context, fsm.Command) (uint64, error)
	WaitApplied func(context.Context, uint64) error
	State       func() *state.Store
	Keyring     func() *secrets.Keyring
	Builder     *buildpacks.Builder
	Registry    *registry.Registry
	// Stack is the base image of buildpack builds.
	Stack string
	// CACerts and Proxy reach builds that download through an intercepting proxy.
	CACerts   [][]byte
	Proxy     map[string]string
	MaxSource int64
	// Retain is how many releases per app keep their image in the registry.
	Retain  int
	WorkDir string
	Logger  *slog.Logger
	// WaitDeploy makes a push wait for its release's deploy (start, health
	// checks, cutover) and fail if the deploy fails. Without a runtime there
	// is nothing to wait for.
	WaitDeploy bool
}

// Pipeline runs builds on this server.
type Pipeline struct {
	cfg Config
}

var (
	_ httpapi.Builds      = (*Pipeline)(nil)
	_ gitreceive.Pipeline = (*Pipeline)(nil)
)

// New returns a pipeline.
func New(cfg Config) *Pipeline {
	if cfg.Retain <= 0 {
		cfg.Retain = DefaultRetain
	}
	if cfg.MaxSource <= 0 {
		cfg.MaxSource = DefaultMaxSource
	}
	return &Pipeline{cfg: cfg}
}

// job is one build.
type job struct {
	id, app, by, source, commit, branch string
	tar                                 io.Reader
	clock                               *clock
}

// clock measures the pipeline's steps.
type clock struct {
	last   time.Time
	phases map[string]int64 // microseconds
}

func newClock() *clock { return &clock{last: time.Now(), phases: map[string]int64{}} }

// lap charges the time since the previous lap to phase.
func (c *clock) lap(phase string) {
	now := time.Now()
	c.phases[phase] += now.Sub(c.last).Microseconds()
	c.last = now
}

// Deploy implements gitreceive.Pipeline: a push to a deploy branch.
func (p *Pipeline) Deploy(ctx context.Context, req gitreceive.DeployRequest, out io.Writer) error {
	_, err := p.run(ctx, job{app: req.App, by: req.Caller.Name, source: "git", commit: req.Commit, branch: req.Branch, tar: req.Source}, out)
	return err
}

// Upload implements httpapi.Builds: `berth deploy -a APP DIR`.
func (p *Pipeline) Upload(ctx context.Context, req httpapi.UploadRequest, out io.Writer) (uint64, error) {
	return p.run(ctx, job{app: req.App, by: req.By, source: "upload", tar: req.Source}, out)
}

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tail keeps the last n bytes written to it.
type tail struct {
	mu  sync.Mutex
	buf []byte
	n   int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.n {
		t.buf = slices.Clone(t.buf[len(t.buf)-t.n:])
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// run executes a build from source and returns the new release's version.
func (p *Pipeline) run(ctx context.Context, j job, out io.Writer) (v uint64, err error) {
	j.id, j.clock = newID(), newClock()
	if err := p.start(ctx, j); err != nil {
		return 0, err
	}
	j.clock.lap("start")
	logs := &tail{n: outputTail}
	w := io.MultiWriter(out, logs)
	defer func() { p.finish(j, v, err, logs) }()

	fmt.Fprintf(w, "-----> berth: building %s (build %s on %s)\n", j.app, j.id, p.cfg.Server)
	dir, err := os.MkdirTemp(p.cfg.WorkDir, "build-"+j.app+"-")
	if err != nil {
		return 0, fmt.Errorf("build dir: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := buildpacks.ExtractContext(j.tar, dir, p.cfg.MaxSource); err != nil {
		return 0, fmt.Errorf("source rejected: %w", err)
	}
	j.clock.lap("receive")
	plan, err := buildpacks.Detect(dir, buildpacks.DetectOptions{Stack: p.cfg.Stack})
	if err != nil {
		return 0, err
	}
	j.clock.lap("detect")
	fmt.Fprintf(w, "-----> %s app detected\n", plan.Kind)
	imageID, err := p.cfg.Builder.Build(ctx, dir, plan, buildpacks.BuildOptions{
		Tag: "berth-build/" + j.app + ":" + j.id, CACerts: p.cfg.CACerts, Proxy: p.cfg.Proxy, Log: w,
	})
	if err != nil {
		return 0, err // a BuildError names the failing step and its output
	}
	j.clock.lap("build")
	desc := "Deploy " + short(j.commit)
	if j.commit == "" {
		desc = "Deploy upload " + j.id
	}
	return p.release(ctx, j, imageID, plan.Procfile, desc, w)
}

// release pushes image to the registry, runs the release command and
// records the release.
func (p *Pipeline) release(ctx context.Context, j job, image string, pf buildpacks.Procfile, desc string, w io.Writer) (uint64, error) {
	ref := p.cfg.Registry.Addr() + "/" + j.app + ":build-" + j.id
	fmt.Fprintf(w, "-----> Pushing image to the berth registry\n")
	digest, err := p.cfg.Builder.Push(ctx, image, ref, w)
	if err != nil {
		return 0, fmt.Errorf("push to the registry: %w", err)
	}
	j.clock.lap("push")
	pinned := p.cfg.Registry.Addr() + "/" + j.app + "@" + digest
	fmt.Fprintf(w, "-----> Image %s\n", pinned)
	if pf.Release != "" {
		fmt.Fprintf(w, "-----> Running release command: %s\n", pf.Release)
		env, err := p.configEnv(j.app)
		if err != nil {
			return 0, err
		}
		code, err := p.cfg.Builder.Run(ctx, pinned, pf.Release, env, w)
		if err != nil {
			return 0, fmt.Errorf("release command: %w", err)
		}
		if code != 0 {
			return 0, fmt.Errorf("release command %q exited with status %d; the release was not created", pf.Release, code)
		}
		j.clock.lap("release_command")
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("the push was interrupted before the release was recorded: %w", err)
	}
	idx, err := p.cfg.Apply(ctx, fsm.Release{
		Audited: fsm.Audited{Audit: &state.AuditEntry{Time: time.Now().UTC(), Actor: j.by, Action: "releases.create", App: j.app, Detail: desc, Remote: j.source}},
		Release: state.NewRelease{App: j.app, Image: pinned, Digest: digest, Processes: pf.Processes, ReleaseCommand: pf.Release,
			Kind: "deploy", Description: desc, Commit: j.commit, BuildID: j.id, CreatedBy: j.by, CreatedAt: time.Now().UTC()},
	})
	if err != nil {
		return 0, fmt.Errorf("record the release: %w", err)
	}
	if err := p.cfg.WaitApplied(ctx, idx); err != nil {
		return 0, err
	}
	rel, err := p.cfg.State().Snapshot().ReleaseOfBuild(j.app, j.id)
	if err != nil {
		return 0, err
	}
	j.clock.lap("record")
	fmt.Fprintf(w, "-----> Released v%d\n", rel.Version)
	p.collect(ctx, j.app, w)
	j.clock.lap("retention")
	if p.cfg.WaitDeploy {
		if err := p.waitDeploy(ctx, state.DeployID(j.app, rel.Version), w); err != nil {
			return rel.Version, err
		}
		j.clock.lap("deploy")
	}
	return rel.Version, nil
}

// configEnv opens the app's current config as KEY=VALUE pairs.
func (p *Pipeline) configEnv(app string) ([]string, error) {
	cfg, _, err := p.cfg.State().Snapshot().Config(nil, app)
	if err != nil {
		return nil, err
	}
	kr := p.cfg.Keyring()
	if kr == nil {
		return nil, errors.New("this server has no keyring yet")
	}
	env := []string{"PORT=5000"}
	for k, sealed := range cfg.Sealed {
		v, err := kr.Open(sealed, []byte(app+"/"+k))
		if err != nil {
			return nil, fmt.Errorf("open config %s: %w", k, err)
		}
		env = append(env, k+"="+string(v))
	}
	slices.Sort(env)
	return env, nil
}

// start records the build as running; a second build of the app is refused.
func (p *Pipeline) start(ctx context.Context, j job) error {
	_, err := p.cfg.Apply(ctx, fsm.BuildStart{Build: state.Build{ID: j.id, App: j.app, Source: j.source, Commit: j.commit,
		Branch: j.branch, Server: p.cfg.Server, CreatedBy: j.by, StartedAt: time.Now().UTC()}})
	if api.IsCode(err, api.CodeConflict) || errors.Is(err, state.ErrBuildRunning) {
		return fmt.Errorf("%w; wait for it to finish and push again", err)
	}
	return err
}

// finish records the outcome, even if the request's context is gone.
func (p *Pipeline) finish(j job, v uint64, buildErr error, logs *tail) {
	status, msg := state.BuildSucceeded, ""
	if buildErr != nil {
		status, msg = state.BuildFailed, buildErr.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.cfg.Apply(ctx, fsm.BuildFinish{ID: j.id, Status: status, Error: msg, Output: logs.String(), Release: v,
		Phases: j.clock.phases, Time: time.Now().UTC()}); err != nil {
		p.cfg.Logger.Warn("record build outcome", "build", j.id, "app", j.app, "err", err)
	}
}

// collect keeps the images of the app's last Retain releases and deletes
// the rest from the registry.
func (p *Pipeline) collect(ctx context.Context, app string, w io.Writer) {
	rels, _, err := p.cfg.State().Snapshot().Releases(nil, app)
	if err != nil {
		return
	}
	var keep []string
	for _, r := range rels {
		if r.Digest != "" && !slices.Contains(keep, r.Digest) && len(keep) < p.cfg.Retain {
			keep = append(keep, r.Digest)
		}
	}
	stats, err := p.cfg.Registry.Collect(ctx, map[string][]string{app: keep})
	if err != nil {
		p.cfg.Logger.Warn("image retention", "app", app, "err", err)
		return
	}
	if stats.ManifestsDeleted > 0 {
		fmt.Fprintf(w, "-----> Removed %d old image(s) (%s freed); the last %d releases keep theirs\n",
			stats.ManifestsDeleted, humanBytes(stats.BytesBefore-stats.BytesAfter), p.cfg.Retain)
	}
}

// ImportImage implements httpapi.Builds: `berth deploy --image REF`.
func (p *Pipeline) ImportImage(ctx context.Context, app, image, desc, by string) (v uint64, err error) {
	j := job{id: newID(), app: app, by: by, source: "image", clock: newClock()}
	if err := p.start(ctx, j); err != nil {
		return 0, err
	}
	logs := &tail{n: outputTail}
	defer func() { p.finish(j, v, err, logs) }()
	return p.release(ctx, j, image, buildpacks.Procfile{}, desc, logs)
}

// ImageAvailable implements httpapi.Builds.
func (p *Pipeline) ImageAvailable(ctx context.Context, rel *state.Release) error {
	ok, err := p.cfg.Registry.ManifestExists(ctx, rel.App, rel.Digest)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("its image %s is no longer in the registry (only the last %d releases keep their images)", short(rel.Digest), p.cfg.Retain)
	}
	return nil
}

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// waitDeploy follows a deploy until it is final, printing its steps.
func (p *Pipeline) waitDeploy(ctx context.Context, id string, w io.Writer) error {
	shown := 0
	for {
		store := p.cfg.State()
		ws := memdb.NewWatchSet()
		ws.Add(store.AbandonCh())
		dep, err := store.Snapshot().Deploy(ws, id)
		if err != nil {
			return err
		}
		for ; shown < len(dep.Steps); shown++ {
			s := dep.Steps[shown]
			switch s.State {
			case state.DeployStarting:
				fmt.Fprintf(w, "-----> Starting v%d; waiting for its health checks\n", dep.To)
			case state.DeployCutover:
				fmt.Fprintf(w, "-----> v%d is healthy and now serves traffic\n", dep.To)
			case state.DeployDraining:
				if dep.From > 0 {
					fmt.Fprintf(w, "-----> Draining v%d\n", dep.From)
				}
			case state.DeployDone:
				fmt.Fprintf(w, "-----> Deployed v%d\n", dep.To)
			case state.DeploySuperseded:
				fmt.Fprintf(w, "-----> v%d was superseded by a newer release\n", dep.To)
			}
		}
		switch dep.State {
		case state.DeployDone, state.DeploySuperseded:
			return nil
		case state.DeployFailed:
			return fmt.Errorf("deploy of v%d failed: %s; the previous release keeps serving", dep.To, dep.Reason)
		}
		if err := ws.WatchCtx(ctx); err != nil {
			return fmt.Errorf("waiting for the deploy of %s: %w", id, err)
		}
	}
}
