// Package nomadtest starts real Consul and Nomad dev agents as child
// processes for tests of berth's nomad runtime: `consul agent -dev` and
// `nomad agent -dev` (server and client in one, with the docker driver), on
// 127.0.0.1 with free ports, TMPDIR inside the test's temporary directory,
// stopped with SIGINT when the test ends.
//
// The binaries are the ones scripts/install-nomad-consul.sh builds and
// caches (Nomad 1.6.1, Consul 1.14.11); a test fails, with the command to
// run, when they are missing. The agents are configured as
// scripts/README-nomad-consul.md says they must be on a shared Docker
// engine: the docker plugin's image GC and dangling-container reaper are
// off.
package nomadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/berthpaas/berth/internal/ports"
)

// Versions the harness runs; the install script builds exactly these.
const (
	NomadVersion  = "1.6.1"
	ConsulVersion = "1.14.11"
)

// installHint is what to do when the binaries are missing.
const installHint = "run scripts/install-nomad-consul.sh (from the repository root) to build and cache Nomad " +
	NomadVersion + " and Consul " + ConsulVersion + " (it prints where they are; set BERTH_TOOLS_DIR if you keep them elsewhere)"

// CheckUpdateInterval is the Consul agent's check_update_interval the
// harness runs with: how long a check's changed output may wait to reach
// the catalog when its status stays the same.
const CheckUpdateInterval = "2s"

// AllocLabel is the label Nomad's docker driver puts on every container,
// with the allocation's ID.
const AllocLabel = "com.hashicorp.nomad.alloc_id"

// Timeouts of the harness: agents start in seconds, but the machine may be
// busy with builds.
const (
	readyTimeout = 2 * time.Minute
	stopTimeout  = 45 * time.Second
)

// Agents is a running Consul and Nomad dev agent pair.
type Agents struct {
	// NomadAddr is Nomad's HTTP API, "http://127.0.0.1:PORT".
	NomadAddr string
	// ConsulAddr is Consul's HTTP API, "127.0.0.1:PORT".
	ConsulAddr string
	// NodeName is the name of the Nomad client node.
	NodeName string
	// Dir holds the agents' config, logs and TMPDIR.
	Dir string

	nomad, consul *exec.Cmd
}

// Binaries returns the paths of the nomad and consul binaries: from
// $BERTH_TOOLS_DIR/bin (default ~/.cache/berth/tools/bin), where
// scripts/install-nomad-consul.sh puts them. The error says how to get
// them.
func Binaries() (nomad, consul string, err error) {
	dir := os.Getenv("BERTH_TOOLS_DIR")
	if dir == "" {
		home, herr := os.UserHomeDir()
		if herr != nil {
			return "", "", fmt.Errorf("nomadtest: no home directory to find the tools in (%v); %s", herr, installHint)
		}
		dir = filepath.Join(home, ".cache", "berth", "tools")
	}
	nomad = filepath.Join(dir, "bin", "nomad")
	consul = filepath.Join(dir, "bin", "consul")
	for _, b := range []struct{ path, word, version string }{
		{nomad, "Nomad", NomadVersion},
		{consul, "Consul", ConsulVersion},
	} {
		if _, serr := os.Stat(b.path); serr != nil {
			return "", "", fmt.Errorf("nomadtest: %s is missing (%v); %s", b.path, serr, installHint)
		}
		out, verr := exec.Command(b.path, "version").Output()
		first, _, _ := strings.Cut(string(out), "\n")
		if verr != nil || strings.TrimSpace(first) != b.word+" v"+b.version {
			return "", "", fmt.Errorf("nomadtest: %s reports %q (err %v), want %s v%s; %s",
				b.path, strings.TrimSpace(first), verr, b.word, b.version, installHint)
		}
	}
	return nomad, consul, nil
}

// Start starts Consul, then Nomad pointing at it, waits until Nomad's
// client node is ready with a healthy docker driver, and stops both when
// t's test ends. It fails t if the binaries are missing or the agents do
// not become ready (with the tail of their logs).
func Start(t testing.TB) *Agents {
	t.Helper()
	nomadBin, consulBin, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	alloc := ports.New()
	port := func() int {
		addr, err := alloc.Addr()
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	a := &Agents{Dir: dir}
	t.Cleanup(func() { a.stop(t) })

	// Consul.
	cHTTP := port()
	a.ConsulAddr = fmt.Sprintf("127.0.0.1:%d", cHTTP)
	a.consul = command(consulBin, tmp, filepath.Join(dir, "consul.log"),
		"agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-http-port", strconv.Itoa(cHTTP), "-dns-port", strconv.Itoa(port()),
		"-grpc-port", strconv.Itoa(port()), "-serf-lan-port", strconv.Itoa(port()),
		"-serf-wan-port", strconv.Itoa(port()), "-server-port", strconv.Itoa(port()),
		"-hcl", "disable_update_check = true",
		// -dev listens for gRPC with TLS on the fixed port 8503; two
		// agents on one host would collide. Nomad does not need it.
		"-hcl", "ports { grpc_tls = -1 }",
		// A check's output reaches the catalog only when its status
		// changes, or after this interval (default 5 min): without it, an
		// instance failing with a 500 after "connection refused" while it
		// started would show the stale reason. berth's agents set it too.
		"-hcl", `check_update_interval = "`+CheckUpdateInterval+`"`,
	)
	if err := start(a.consul); err != nil {
		t.Fatalf("nomadtest: start consul: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := a.waitConsul(ctx); err != nil {
		t.Fatalf("nomadtest: consul at %s not ready: %v\n%s", a.ConsulAddr, err, a.logTail("consul.log"))
	}

	// Nomad.
	nHTTP, nRPC, nSerf := port(), port(), port()
	a.NomadAddr = fmt.Sprintf("http://127.0.0.1:%d", nHTTP)
	cfg := filepath.Join(dir, "nomad-dev.hcl")
	if err := os.WriteFile(cfg, []byte(nomadConfig(nHTTP, nRPC, nSerf, a.ConsulAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	a.nomad = command(nomadBin, tmp, filepath.Join(dir, "nomad.log"), "agent", "-dev", "-config", cfg)
	if err := start(a.nomad); err != nil {
		t.Fatalf("nomadtest: start nomad: %v", err)
	}
	if err := a.waitNomad(ctx); err != nil {
		t.Fatalf("nomadtest: nomad at %s not ready: %v\n%s", a.NomadAddr, err, a.logTail("nomad.log"))
	}
	t.Logf("nomadtest: nomad %s, consul %s, node %s, logs in %s", a.NomadAddr, a.ConsulAddr, a.NodeName, dir)
	return a
}

// nomadConfig is the dev agent's configuration (see
// scripts/README-nomad-consul.md): loopback only, Consul at consul, and the
// docker plugin's garbage collection off, because other agents and tests
// share the Docker engine and locally built images cannot be pulled back.
func nomadConfig(http, rpc, serf int, consul string) string {
	return fmt.Sprintf(`bind_addr = "127.0.0.1"
disable_update_check = true
log_level = "INFO"

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

ports {
  http = %d
  rpc  = %d
  serf = %d
}

client {
  network_interface = "lo"
}

consul {
  address = %q
}

plugin "docker" {
  config {
    gc {
      image = false
      dangling_containers {
        enabled = false
      }
    }
  }
}
`, http, rpc, serf, consul)
}

// command prepares an agent process: its output goes to logPath, its
// TMPDIR is tmp (Nomad's -dev mode makes its directories there), and it
// gets its own process group so a test's ^C reaches it only through stop.
func command(bin, tmp, logPath string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(filterEnv(os.Environ(), "NOMAD_", "CONSUL_", "TMPDIR="), "TMPDIR="+tmp)
	if f, err := os.Create(logPath); err == nil {
		cmd.Stdout = f
		cmd.Stderr = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// start starts cmd and closes this process's copy of its log file.
func start(cmd *exec.Cmd) error {
	err := cmd.Start()
	if f, ok := cmd.Stdout.(*os.File); ok {
		f.Close()
	}
	return err
}

// filterEnv drops variables that would point the agents elsewhere.
func filterEnv(env []string, prefixes ...string) []string {
	out := env[:0:0]
outer:
	for _, kv := range env {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		out = append(out, kv)
	}
	return out
}

var httpc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, out)
}

// poll calls f every 250 ms until it returns nil or ctx ends.
func poll(ctx context.Context, exited <-chan struct{}, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-exited:
			return fmt.Errorf("the agent exited (last: %v)", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// exited is closed when the process has exited (best effort: it polls).
func exited(ctx context.Context, cmd *exec.Cmd) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for {
			// Signal 0 checks the process exists; a zombie still does,
			// so look at its state too.
			if cmd.Process.Signal(syscall.Signal(0)) != nil || zombie(cmd.Process.Pid) {
				close(ch)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return ch
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func (a *Agents) waitConsul(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return poll(ctx, exited(ctx, a.consul), func() error {
		var leader string
		if err := getJSON(ctx, "http://"+a.ConsulAddr+"/v1/status/leader", &leader); err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
}

func (a *Agents) waitNomad(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return poll(ctx, exited(ctx, a.nomad), func() error {
		var nodes []struct {
			Name    string
			Status  string
			Drivers map[string]struct{ Detected, Healthy bool }
		}
		if err := getJSON(ctx, a.NomadAddr+"/v1/nodes", &nodes); err != nil {
			return err
		}
		for _, n := range nodes {
			if d := n.Drivers["docker"]; n.Status == "ready" && d.Detected && d.Healthy {
				a.NodeName = n.Name
				return nil
			}
		}
		return fmt.Errorf("no ready node with a healthy docker driver: %+v", nodes)
	})
}

// logTail is the end of an agent's log, for failure messages.
func (a *Agents) logTail(name string) string {
	b, err := os.ReadFile(filepath.Join(a.Dir, name))
	if err != nil {
		return fmt.Sprintf("(no %s: %v)", name, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return "--- last lines of " + name + " ---\n" + strings.Join(lines, "\n")
}

// stop stops Nomad, then Consul, with SIGINT (Nomad's dev agent then stops
// its allocations and removes their containers), and kills what does not
// stop in time. Containers a killed Nomad left behind are removed by their
// allocation IDs.
func (a *Agents) stop(t testing.TB) {
	var allocs []string
	if a.nomad != nil && a.nomad.Process != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var list []struct{ ID string }
		if err := getJSON(ctx, a.NomadAddr+"/v1/allocations", &list); err == nil {
			for _, l := range list {
				allocs = append(allocs, l.ID)
			}
		}
		cancel()
		if !interrupt(t, "nomad", a.nomad) {
			removeContainers(t, allocs)
		}
	}
	if a.consul != nil && a.consul.Process != nil {
		interrupt(t, "consul", a.consul)
	}
	if t.Failed() {
		t.Logf("nomadtest: agents' logs:\n%s\n%s", a.logTail("nomad.log"), a.logTail("consul.log"))
	}
}

// interrupt sends SIGINT and waits; it kills the process group after
// stopTimeout. It reports whether the process stopped by itself.
func interrupt(t testing.TB, name string, cmd *exec.Cmd) bool {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
		return true
	case <-time.After(stopTimeout):
		t.Logf("nomadtest: %s did not stop within %s after SIGINT; killing it", name, stopTimeout)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return false
	}
}

// removeContainers removes the containers of the given allocations.
func removeContainers(t testing.TB, allocs []string) {
	if len(allocs) == 0 {
		return
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Logf("nomadtest: docker client: %v", err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, id := range allocs {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", AllocLabel+"="+id))})
		if err != nil {
			t.Logf("nomadtest: list containers of alloc %s: %v", id, err)
			return
		}
		for _, c := range cs {
			if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
				t.Logf("nomadtest: remove container %.12s: %v", c.ID, err)
			}
		}
	}
}
