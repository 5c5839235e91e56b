// Package harness runs real berth server processes on loopback for e2e tests
// and benchmarks: it builds the berth binary, forms clusters of 1, 3 or 5
// servers, kills servers with SIGKILL, restarts them on the same data, and
// adds or replaces members. It talks to servers only through cluster/api.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/internal/ports"
	"github.com/berthpaas/berth/internal/wait"
)

// Build compiles ./cmd/berth of the module containing the working
// directory into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "berth")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/berth")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/berth: %w\n%s", err, out)
	}
	return bin, nil
}

// Options tune a cluster.
type Options struct {
	// Builds turns on builds, the registry and the git endpoint (each server
	// gets ports for them); Stack is the buildpack base image.
	Builds bool
	Stack  string
	// Build is written as the "build" section of each server's config file.
	Build map[string]any
	// Runtime is "docker", "nomad" or "" (none). Docker containers are
	// labelled with a value unique to the cluster and removed by Close.
	Runtime string
	// Nomad is written as the "nomad" section of the config (nomad runtime).
	Nomad map[string]any
	// Raft is written as the "raft" section of each server's config file.
	Raft map[string]any
	// LogDir receives each server's log; default: the server's data dir.
	LogDir string
	// AppsDomain gives apps the host APP.<AppsDomain> on routers.
	AppsDomain string
}

// FastRaft are short timings for tests on loopback.
func FastRaft() map[string]any {
	return map[string]any{"heartbeat_timeout": "300ms", "election_timeout": "300ms", "leader_lease_timeout": "150ms"}
}

// Server is one berth server process.
type Server struct {
	Name         string
	APIAddr      string
	RaftAddr     string
	GitAddr      string
	RegistryAddr string
	DataDir      string
	Join         []string

	cmd  *exec.Cmd
	done chan struct{}
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Cluster is a set of server processes.
type Cluster struct {
	routers   []*Router
	Bin       string
	Dir       string
	Opts      Options
	Servers   []*Server
	RootToken string

	mu    sync.Mutex
	alloc *ports.Allocator
}

// New prepares (but does not start) a cluster of n servers that will form
// with --bootstrap-expect n, each joining all others.
func New(bin, dir string, n int, opts Options) (*Cluster, error) {
	c := &Cluster{Bin: bin, Dir: dir, Opts: opts, alloc: ports.New()}
	for i := range n {
		s, err := c.newServer(fmt.Sprintf("s%d", i+1))
		if err != nil {
			return nil, err
		}
		c.Servers = append(c.Servers, s)
	}
	for _, s := range c.Servers {
		for _, o := range c.Servers {
			if o != s {
				s.Join = append(s.Join, o.APIAddr)
			}
		}
	}
	return c, nil
}

func (c *Cluster) newServer(name string) (*Server, error) {
	apiAddr, err := c.alloc.Addr()
	if err != nil {
		return nil, err
	}
	raftAddr, err := c.alloc.Addr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Server{Name: name, APIAddr: apiAddr, RaftAddr: raftAddr, DataDir: dir}
	if c.Opts.Builds {
		if s.GitAddr, err = c.alloc.Addr(); err != nil {
			return nil, err
		}
		if s.RegistryAddr, err = c.alloc.Addr(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Start forms the cluster: starts every server, waits for a leader and
// creates the root token with `cluster bootstrap`.
func (c *Cluster) Start(ctx context.Context) error {
	for i := range c.Servers {
		if err := c.StartServer(i, len(c.Servers), ""); err != nil {
			return err
		}
	}
	if _, err := c.WaitLeader(ctx, 20*time.Second); err != nil {
		return err
	}
	var tok *api.Token
	err := wait.For(ctx, "cluster bootstrap", 20*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		var err error
		tok, err = api.NewClient(c.Servers[0].APIAddr, "", nil).ClusterBootstrap(ctx)
		return err
	})
	if err != nil {
		return err
	}
	c.RootToken = tok.Secret
	return nil
}

// StartServer (re)starts server i. expect is its --bootstrap-expect (0 to
// join an existing cluster with joinToken).
func (c *Cluster) StartServer(i, expect int, joinToken string) error {
	s := c.Servers[i]
	if s.Running() {
		return fmt.Errorf("%s is already running", s.Name)
	}
	cfg := map[string]any{"raft": c.Opts.Raft}
	if c.Opts.Raft == nil {
		cfg["raft"] = FastRaft()
	}
	build := map[string]any{"disabled": !c.Opts.Builds}
	for k, v := range c.Opts.Build {
		build[k] = v
	}
	if c.Opts.Stack != "" {
		build["stack"] = c.Opts.Stack
	}
	cfg["build"] = build
	if c.Opts.Builds {
		cfg["git_bind"], cfg["registry_bind"] = s.GitAddr, s.RegistryAddr
	}
	cfg["runtime"] = "none"
	if c.Opts.Nomad != nil {
		cfg["nomad"] = c.Opts.Nomad
	}
	if c.Opts.Runtime != "" {
		cfg["runtime"], cfg["runtime_cluster"] = c.Opts.Runtime, c.RuntimeCluster()
	}
	if c.Opts.AppsDomain != "" {
		cfg["apps_domain"] = c.Opts.AppsDomain
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(s.DataDir, "config.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		return err
	}
	args := []string{"server", "--config", cfgPath, "--data-dir", s.DataDir, "--name", s.Name,
		"--bind", s.APIAddr, "--raft-bind", s.RaftAddr, "--log-level", "debug"}
	if expect > 0 {
		args = append(args, "--bootstrap-expect", fmt.Sprint(expect))
	}
	for _, j := range s.Join {
		args = append(args, "--join", j)
	}
	if joinToken != "" {
		args = append(args, "--join-token", joinToken)
	}
	logDir := c.Opts.LogDir
	if logDir == "" {
		logDir = s.DataDir
	}
	logf, err := os.OpenFile(filepath.Join(logDir, s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", s.Name, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(s.done)
	return wait.For(context.Background(), s.Name+" API", 15*time.Second, 20*time.Millisecond, func(ctx context.Context) error {
		if !s.Running() {
			return fmt.Errorf("%s exited; see %s", s.Name, logf.Name())
		}
		_, err := api.NewClient(s.APIAddr, "", nil).ClusterSelf(ctx)
		return err
	})
}

// Kill sends SIGKILL to server i and waits for it to die.
func (c *Cluster) Kill(i int) {
	s := c.Servers[i]
	if !s.Running() {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Stop sends SIGTERM to server i and waits up to 10 s before killing it.
func (c *Cluster) Stop(i int) {
	s := c.Servers[i]
	if !s.Running() {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		c.Kill(i)
	}
}

// Restart starts a stopped server again on its data dir.
func (c *Cluster) Restart(i int) error { return c.StartServer(i, 0, "") }

// RuntimeCluster is the label value of this cluster's containers.
func (c *Cluster) RuntimeCluster() string { return "e2e-" + filepath.Base(c.Dir) }

// Close kills every router and server and removes the cluster's containers.
func (c *Cluster) Close() {
	for _, r := range c.routers {
		r.Kill()
	}
	for i := range c.Servers {
		c.Kill(i)
	}
	if c.Opts.Runtime == "docker" {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=berth.cluster="+c.RuntimeCluster()).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	}
}

// Client returns a root-token client for server i.
func (c *Cluster) Client(i int) *api.Client {
	return api.NewClient(c.Servers[i].APIAddr, c.RootToken, nil)
}

// Index returns the position of the server named name.
func (c *Cluster) Index(name string) int {
	for i, s := range c.Servers {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// WaitLeader waits until a running server reports itself leader and every
// running server agrees on it, and returns its index.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (int, error) {
	leader := -1
	err := wait.For(ctx, "a leader", timeout, 20*time.Millisecond, func(ctx context.Context) error {
		leader = -1
		names := map[string]bool{}
		for i, s := range c.Servers {
			if !s.Running() {
				continue
			}
			self, err := api.NewClient(s.APIAddr, "", nil).ClusterSelf(ctx)
			if err != nil {
				return err
			}
			if self.State == "Leader" {
				leader = i
			}
			names[self.Leader] = true
		}
		if leader < 0 {
			return errors.New("no server is leader")
		}
		if len(names) != 1 {
			return fmt.Errorf("servers disagree on the leader: %v", names)
		}
		return nil
	})
	return leader, err
}

// AddServer starts a new server that joins the running cluster through the
// given servers, using the root token, and returns its index.
func (c *Cluster) AddServer(name string, through ...int) (int, error) {
	c.mu.Lock()
	s, err := c.newServer(name)
	c.mu.Unlock()
	if err != nil {
		return -1, err
	}
	for _, i := range through {
		s.Join = append(s.Join, c.Servers[i].APIAddr)
	}
	c.Servers = append(c.Servers, s)
	i := len(c.Servers) - 1
	return i, c.StartServer(i, 0, c.RootToken)
}
