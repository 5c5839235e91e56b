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
//
// StartWith takes options: HTTPS-only agents with a test CA (Options.TLS,
// NewTLS) and a server that notices lost nodes in seconds
// (Options.FastNodeLoss). Agents.StartClient adds a second (third, ...)
// client node with its own Consul agent; Client.Kill makes it die like a
// machine.
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
	// NodeID is the ID of the dev agent's Nomad client node.
	NodeID string
	// Dir holds the agents' config, logs and TMPDIR.
	Dir string
	// TLS is what the agents serve HTTPS with (Options.TLS), or nil.
	TLS *TLS

	opts          Options
	httpc         *http.Client
	nomadBin      string
	consulBin     string
	ports         *ports.Allocator
	nomadRPC      int // the dev server's RPC port, for more clients
	consulSerfLAN int // the Consul dev agent's LAN gossip port, for more agents
	clients       int // extra clients started

	nomad, consul *exec.Cmd
}

// Options change how Start runs the agents.
type Options struct {
	// TLS serves Nomad's and Consul's HTTP APIs over HTTPS only, with the
	// server certificate and CA of these files (see NewTLS). Nomad talks
	// to Consul over HTTPS too; NomadAddr and ConsulAddr then start with
	// https://.
	TLS *TLS
	// FastNodeLoss makes the Nomad server mark a node down within 4–7 s
	// of its last heartbeat (min_heartbeat_ttl 2s, heartbeat_grace 3s,
	// instead of 10s and 10s): for tests of lost nodes.
	FastNodeLoss bool
}

// Dynamic port ranges: the dev agent's client and each extra client
// (StartClient) allocate host ports from ranges of their own, as they all
// publish on 127.0.0.1.
const (
	devMinPort     = 20000
	devMaxPort     = 24999
	clientPortBase = 25000
	clientPortSpan = 2000
	maxClients     = 3
)

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
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Agents {
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
	httpc, err := o.TLS.client()
	if err != nil {
		t.Fatal(err)
	}
	a := &Agents{Dir: dir, TLS: o.TLS, opts: o, httpc: httpc, nomadBin: nomadBin, consulBin: consulBin, ports: alloc}
	t.Cleanup(func() { a.stop(t) })

	// Consul.
	cHTTP := port()
	a.consulSerfLAN = port()
	a.ConsulAddr = fmt.Sprintf("127.0.0.1:%d", cHTTP)
	httpArgs := []string{"-http-port", strconv.Itoa(cHTTP)}
	if o.TLS != nil {
		a.ConsulAddr = "https://" + a.ConsulAddr
		httpArgs = []string{"-hcl", fmt.Sprintf("ports { http = -1\n https = %d }", cHTTP), "-hcl", o.TLS.consulHCL()}
	}
	args := []string{"agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1"}
	args = append(args, httpArgs...)
	args = append(args, "-dns-port", strconv.Itoa(port()),
		"-grpc-port", strconv.Itoa(port()), "-serf-lan-port", strconv.Itoa(a.consulSerfLAN),
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
	a.consul = command(consulBin, tmp, filepath.Join(dir, "consul.log"), args...)
	if err := start(a.consul); err != nil {
		t.Fatalf("nomadtest: start consul: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := a.waitConsul(ctx); err != nil {
		t.Fatalf("nomadtest: consul at %s not ready: %v\n%s", a.ConsulAddr, err, a.logTail("consul.log"))
	}

	// Nomad.
	nHTTP, nSerf := port(), port()
	a.nomadRPC = port()
	a.NomadAddr = fmt.Sprintf("http://127.0.0.1:%d", nHTTP)
	if o.TLS != nil {
		a.NomadAddr = fmt.Sprintf("https://127.0.0.1:%d", nHTTP)
	}
	cfg := filepath.Join(dir, "nomad-dev.hcl")
	hcl := nomadConfig(nHTTP, a.nomadRPC, nSerf, a.ConsulAddr, devMinPort, devMaxPort, o.TLS)
	if o.FastNodeLoss {
		// The server marks a node down when it has not heard from it for
		// a TTL (min_heartbeat_ttl to twice that) plus the grace. A node
		// heartbeats once per TTL, so the grace is the slack it gets.
		hcl += "\nserver {\n  min_heartbeat_ttl = \"2s\"\n  heartbeat_grace   = \"3s\"\n}\n"
	}
	if err := os.WriteFile(cfg, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	a.nomad = command(nomadBin, tmp, filepath.Join(dir, "nomad.log"), "agent", "-dev", "-config", cfg)
	if err := start(a.nomad); err != nil {
		t.Fatalf("nomadtest: start nomad: %v", err)
	}
	node, err := a.waitNode(ctx, a.nomad, "")
	if err != nil {
		t.Fatalf("nomadtest: nomad at %s not ready: %v\n%s", a.NomadAddr, err, a.logTail("nomad.log"))
	}
	a.NodeName, a.NodeID = node.Name, node.ID
	t.Logf("nomadtest: nomad %s, consul %s, node %s, logs in %s", a.NomadAddr, a.ConsulAddr, a.NodeName, dir)
	return a
}

// nomadConfig is a Nomad agent's configuration (see
// scripts/README-nomad-consul.md): loopback only, Consul at consul, host
// ports from minPort to maxPort, and the docker plugin's garbage
// collection off, because other agents and tests share the Docker engine
// (each agent would remove the others' containers as dangling) and locally
// built images cannot be pulled back. With tls, the HTTP API is HTTPS and
// Consul is reached over HTTPS.
func nomadConfig(http, rpc, serf int, consul string, minPort, maxPort int, tls *TLS) string {
	consulBlock := fmt.Sprintf("  address = %q\n", consul)
	tlsBlock := ""
	if tls != nil {
		consulBlock = fmt.Sprintf("  address   = %q\n  ssl       = true\n  ca_file   = %q\n  cert_file = %q\n  key_file  = %q\n",
			strings.TrimPrefix(consul, "https://"), tls.CAFile, tls.ClientCertFile, tls.ClientKeyFile)
		tlsBlock = fmt.Sprintf("\ntls {\n  http      = true\n  ca_file   = %q\n  cert_file = %q\n  key_file  = %q\n}\n",
			tls.CAFile, tls.CertFile, tls.KeyFile)
	}
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
  min_dynamic_port  = %d
  max_dynamic_port  = %d
}

consul {
%s}

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
%s`, http, rpc, serf, minPort, maxPort, consulBlock, tlsBlock)
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

// call sends a request to an agent's HTTP API with the harness's client
// and decodes a JSON answer into out (when out is not nil).
func (a *Agents) call(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	resp, err := a.httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (a *Agents) getJSON(ctx context.Context, url string, out any) error {
	return a.call(ctx, http.MethodGet, url, nil, out)
}

// consulURL is the base URL of a Consul agent's HTTP API at addr.
func consulURL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
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
	return a.waitConsulAt(ctx, a.consul, a.ConsulAddr)
}

// waitConsulAt waits until the Consul agent at addr knows a leader.
func (a *Agents) waitConsulAt(ctx context.Context, cmd *exec.Cmd, addr string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return poll(ctx, exited(ctx, cmd), func() error {
		var leader string
		if err := a.getJSON(ctx, consulURL(addr)+"/v1/status/leader", &leader); err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	})
}

// nodeStub is what the harness reads of a Nomad node.
type nodeStub struct {
	ID, Name, Status, SchedulingEligibility string
	Drivers                                 map[string]struct{ Detected, Healthy bool }
}

// waitNode waits until Nomad has a ready node with a healthy docker driver
// (named name, or any when name is "") while cmd runs.
func (a *Agents) waitNode(ctx context.Context, cmd *exec.Cmd, name string) (nodeStub, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var found nodeStub
	err := poll(ctx, exited(ctx, cmd), func() error {
		var nodes []nodeStub
		if err := a.getJSON(ctx, a.NomadAddr+"/v1/nodes", &nodes); err != nil {
			return err
		}
		for _, n := range nodes {
			if d := n.Drivers["docker"]; (name == "" || n.Name == name) && n.Status == "ready" && d.Detected && d.Healthy {
				found = n
				return nil
			}
		}
		return fmt.Errorf("no ready node %q with a healthy docker driver: %+v", name, nodes)
	})
	return found, err
}

// NodeStatus is the status Nomad's servers give the node ("ready",
// "down", ...).
func (a *Agents) NodeStatus(ctx context.Context, nodeID string) (string, error) {
	var n nodeStub
	if err := a.getJSON(ctx, a.NomadAddr+"/v1/node/"+nodeID, &n); err != nil {
		return "", err
	}
	return n.Status, nil
}

// SetEligible marks a node eligible or ineligible for new allocations
// (what `nomad node eligibility -enable/-disable` does).
func (a *Agents) SetEligible(ctx context.Context, nodeID string, eligible bool) error {
	body := map[string]any{"NodeID": nodeID, "Eligibility": "ineligible"}
	if eligible {
		body["Eligibility"] = "eligible"
	}
	return a.call(ctx, http.MethodPost, a.NomadAddr+"/v1/node/"+nodeID+"/eligibility", body, nil)
}

// nodeAllocs lists the IDs of the allocations Nomad placed on a node.
func (a *Agents) nodeAllocs(ctx context.Context, nodeID string) ([]string, error) {
	var list []struct{ ID string }
	if err := a.getJSON(ctx, a.NomadAddr+"/v1/node/"+nodeID+"/allocations", &list); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(list))
	for _, l := range list {
		ids = append(ids, l.ID)
	}
	return ids, nil
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
		if err := a.getJSON(ctx, a.NomadAddr+"/v1/allocations", &list); err == nil {
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

// Client is an extra Nomad client agent: a second node of the dev agent's
// cluster, a process of its own with its own data directory, ports, node
// name and host port range, joining the dev server over RPC. It has a
// Consul client agent of its own joining the dev Consul agent, as a real
// node would: Nomad clients deregister the Nomad services they do not know
// from their local Consul agent, so two clients sharing one Consul agent
// would remove each other's services.
type Client struct {
	// NodeName and NodeID are the Nomad node's.
	NodeName, NodeID string
	// ConsulAddr is its Consul agent's HTTP API, "127.0.0.1:PORT".
	ConsulAddr string
	// Dir holds its config, logs, data and TMPDIR.
	Dir string

	a             *Agents
	nomad, consul *exec.Cmd
	killed        bool
}

// StartClient starts another Nomad client node (with its Consul agent),
// waits until it is ready with a healthy docker driver, and removes it when
// t's test ends: it is killed like a lost machine (see Kill), as a client
// agent's SIGINT leaves its allocations running. It does not support TLS.
func (a *Agents) StartClient(t testing.TB) *Client {
	t.Helper()
	if a.TLS != nil {
		t.Fatal("nomadtest: StartClient does not support TLS agents")
	}
	if a.clients >= maxClients {
		t.Fatalf("nomadtest: at most %d extra clients", maxClients)
	}
	a.clients++
	n := a.clients
	port := func() int {
		addr, err := a.ports.Addr()
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		v, _ := strconv.Atoi(p)
		return v
	}
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Client{
		NodeName: fmt.Sprintf("berth-test-client%d-%s", n, filepath.Base(dir)),
		Dir:      dir,
		a:        a,
	}
	t.Cleanup(func() { c.cleanup(t) })

	// Its Consul client agent.
	cHTTP := port()
	c.ConsulAddr = fmt.Sprintf("127.0.0.1:%d", cHTTP)
	c.consul = command(a.consulBin, tmp, filepath.Join(dir, "consul.log"),
		"agent", "-data-dir", filepath.Join(dir, "consul-data"), "-node", c.NodeName,
		"-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-http-port", strconv.Itoa(cHTTP), "-dns-port", "-1", "-grpc-port", "-1",
		"-serf-lan-port", strconv.Itoa(port()), "-serf-wan-port", strconv.Itoa(port()),
		"-server-port", strconv.Itoa(port()),
		"-retry-join", fmt.Sprintf("127.0.0.1:%d", a.consulSerfLAN), "-retry-interval", "1s",
		"-hcl", "disable_update_check = true",
		"-hcl", "ports { grpc_tls = -1 }",
		"-hcl", `check_update_interval = "`+CheckUpdateInterval+`"`,
	)
	if err := start(c.consul); err != nil {
		t.Fatalf("nomadtest: start consul client agent: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := a.waitConsulAt(ctx, c.consul, c.ConsulAddr); err != nil {
		t.Fatalf("nomadtest: consul client agent at %s not ready: %v\n%s", c.ConsulAddr, err, c.logTail("consul.log"))
	}

	// Its Nomad client agent.
	minPort := clientPortBase + (n-1)*clientPortSpan
	hcl := nomadConfig(port(), port(), port(), c.ConsulAddr, minPort, minPort+clientPortSpan-1, nil) + fmt.Sprintf(`
name     = %q
data_dir = %q

server {
  enabled = false
}

client {
  enabled       = true
  servers       = ["127.0.0.1:%d"]
  cgroup_parent = "berth-test-client%d.slice"
}
`, c.NodeName, filepath.Join(dir, "data"), a.nomadRPC, n)
	cfg := filepath.Join(dir, "nomad-client.hcl")
	if err := os.WriteFile(cfg, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	c.nomad = command(a.nomadBin, tmp, filepath.Join(dir, "nomad.log"), "agent", "-config", cfg)
	if err := start(c.nomad); err != nil {
		t.Fatalf("nomadtest: start nomad client: %v", err)
	}
	node, err := a.waitNode(ctx, c.nomad, c.NodeName)
	if err != nil {
		t.Fatalf("nomadtest: nomad client %s not ready: %v\n%s", c.NodeName, err, c.logTail("nomad.log"))
	}
	c.NodeID = node.ID
	t.Logf("nomadtest: client node %s (%.8s), consul agent %s, logs in %s", c.NodeName, c.NodeID, c.ConsulAddr, dir)
	return c
}

// Kill makes the client's machine die: its Nomad and Consul agents (and
// their plugin processes) get SIGKILL, and the containers of its
// allocations are removed, without telling Nomad or Consul anything.
// Nomad's servers then miss its heartbeats and mark it down.
func (c *Client) Kill(t testing.TB) {
	t.Helper()
	if c.killed {
		return
	}
	c.killed = true
	for _, cmd := range []*exec.Cmd{c.nomad, c.consul} {
		if cmd == nil || cmd.Process == nil {
			continue
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.NodeID != "" {
		allocs, err := c.a.nodeAllocs(ctx, c.NodeID)
		if err != nil {
			t.Logf("nomadtest: list the allocations of node %s: %v", c.NodeName, err)
		}
		removeContainers(t, allocs)
	}
	unmountUnder(t, c.Dir)
}

// cleanup kills the client (if the test did not) and shows its logs when
// the test failed.
func (c *Client) cleanup(t testing.TB) {
	c.Kill(t)
	if t.Failed() {
		t.Logf("nomadtest: client %s's logs:\n%s\n%s", c.NodeName, c.logTail("nomad.log"), c.logTail("consul.log"))
	}
}

func (c *Client) logTail(name string) string {
	return (&Agents{Dir: c.Dir}).logTail(name)
}

// unmountUnder unmounts what a killed Nomad client left mounted in its
// data directory (the tmpfs of allocations' secrets directories), so that
// the test's temporary directory can be removed.
func unmountUnder(t testing.TB, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT ...
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil {
			t.Logf("nomadtest: unmount %s: %v", points[i], err)
		}
	}
}
