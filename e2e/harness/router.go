package harness

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berthpaas/berth/internal/wait"
)

// Router is one `berth router` process.
type Router struct {
	Name     string
	HTTPAddr string
	// HTTPSAddr is the --https address ("" if none), for StartRouterAt.
	HTTPSAddr string
	DataDir   string
	// Log is the router's stderr and stdout; AccessLog its JSON access log.
	Log, AccessLog string
	args           []string
	bin            string
	cmd            *exec.Cmd
	done           chan struct{}
}

// StartRouter starts a router named name that reads routes from server i
// with token (a router or admin token). extra are more flags (e.g.
// --consul-addr).
func (c *Cluster) StartRouter(name string, i int, token string, extra ...string) (*Router, error) {
	addr, err := c.alloc.Addr()
	if err != nil {
		return nil, err
	}
	return c.StartRouterAt(name, i, token, addr, "", extra...)
}

// FreeAddr returns a free 127.0.0.1 address that the cluster hands out to
// nothing else, for StartRouterAt.
func (c *Cluster) FreeAddr() (string, error) { return c.alloc.Addr() }

// StartRouterAt is StartRouter with plain HTTP on addr and, unless httpsAddr
// is "", HTTPS on httpsAddr (--https).
func (c *Cluster) StartRouterAt(name string, i int, token, addr, httpsAddr string, extra ...string) (*Router, error) {
	if httpsAddr != "" {
		extra = append([]string{"--https", httpsAddr}, extra...)
	}
	dir := filepath.Join(c.Dir, "router-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &Router{Name: name, HTTPAddr: addr, HTTPSAddr: httpsAddr, DataDir: dir, bin: c.Bin,
		Log: filepath.Join(dir, "router.log"), AccessLog: filepath.Join(dir, "access.log")}
	r.args = append([]string{"router", "--server", c.Servers[i].APIAddr, "--token", token, "--http", addr,
		"--name", name, "--data-dir", dir, "--access-log", r.AccessLog, "--log-level", "debug"}, extra...)
	c.routers = append(c.routers, r)
	return r, r.Start()
}

// Start (re)starts the router with its flags and waits for its health
// endpoint.
func (r *Router) Start() error {
	if r.Running() {
		return fmt.Errorf("router %s is already running", r.Name)
	}
	logf, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, r.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start router %s: %w", r.Name, err)
	}
	r.cmd, r.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(r.done)
	return wait.For(context.Background(), "router "+r.Name, 15*time.Second, 20*time.Millisecond, func(ctx context.Context) error {
		if !r.Running() {
			return fmt.Errorf("router %s exited; see %s", r.Name, r.Log)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.HTTPAddr+"/__berth/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// Running reports whether the router process is alive.
func (r *Router) Running() bool {
	if r.done == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the router and waits for it to die.
func (r *Router) Kill() {
	if !r.Running() {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// Routers returns the routers started with StartRouter.
func (c *Cluster) Routers() []*Router { return c.routers }
