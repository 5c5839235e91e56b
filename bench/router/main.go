// Command router measures berth's router against the alternatives, all in
// one run on loopback: wrk drives a tiny response (2 bytes) through
//
//   - direct: straight to the backend (the baseline);
//   - berth: the berth router, lean frontend (the default);
//   - berth-caddy: the berth handler inside Caddy's http server;
//   - berth-reverse-proxy: Caddy's reverse_proxy fed by berth's upstream source;
//   - nginx: the Debian package, upstream keep-alive configured;
//   - caddy: stock Caddy reverse_proxy with a static config (default
//     transport), built from this module.
//
// Every proxy runs as its own process (this binary re-executed, or nginx),
// so its CPU time is read from /proc/<pid>/stat. For each target it prints
// req/s and p50/p99 latency, the ratio to direct, CPU microseconds per
// request in the proxy process, and new upstream connections per 1,000
// requests (accepts counted on the backend's listener). With -rounds > 1
// the targets are interleaved: ratios are the median of the per-round
// ratios, other figures the median over rounds.
//
// Two options put variants of the berth target side by side in the same
// run, so that a change is measured against what it changes:
//
//   - -before BINARY adds "berth-before": the lean frontend served by
//     another build of this command (say, of the previous commit);
//
//   - -variants 'gomaxprocs1=GOMAXPROCS=1;gogc400=GOGC=400' adds
//     "berth+gomaxprocs1" and "berth+gogc400": the lean frontend with
//     that environment (comma-separated variables).
//
//     go run ./bench/router [-duration 10s] [-rounds 3] [-connections 64] [-threads 2]
//
// It needs wrk and nginx (apt-get install wrk nginx).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // -pprof, for profiling a child by hand
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/berthpaas/berth/router"
)

const benchHost = "bench.apps.test"

func main() {
	serve := flag.String("serve", "", "internal: run one proxy (berth, berth-caddy, berth-reverse-proxy, caddy) and wait")
	listen := flag.String("listen", "", "internal: proxy listen address")
	upstream := flag.String("upstream", "", "internal: backend address")
	accessLog := flag.String("access-log", "", "internal: access log file for berth")
	pprofAddr := flag.String("pprof", "", "internal: serve net/http/pprof here (profiling a child by hand)")
	duration := flag.Duration("duration", 10*time.Second, "how long each wrk run lasts")
	rounds := flag.Int("rounds", 1, "rounds over all targets (median shown)")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	berthEnv := flag.String("berth-env", "", "extra environment for the berth processes, e.g. GOGC=400,GOMAXPROCS=1")
	only := flag.String("targets", "direct,berth,berth-caddy,berth-reverse-proxy,nginx,caddy", "targets to run, comma-separated")
	before := flag.String("before", "", "another build of this command: adds the target berth-before, its lean frontend")
	variants := flag.String("variants", "", "extra lean-frontend targets with their environment: name=VAR=v,VAR=v;name2=...")
	flag.Parse()
	if *serve != "" {
		if *pprofAddr != "" {
			go http.ListenAndServe(*pprofAddr, nil)
		}
		if err := serveProxy(*serve, *listen, *upstream, *accessLog); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	targets := strings.Split(*only, ",")
	kinds := map[string]childKind{}
	if *before != "" {
		targets = insertAfterBerth(targets, "berth-before")
		kinds["berth-before"] = childKind{serve: "berth", bin: *before, env: *berthEnv}
	}
	for _, v := range strings.Split(*variants, ";") {
		name, env, ok := strings.Cut(v, "=")
		if v == "" {
			continue
		}
		if !ok || name == "" {
			fmt.Fprintf(os.Stderr, "bench: variant %q: want name=VAR=value,...\n", v)
			os.Exit(2)
		}
		t := "berth+" + name
		targets = insertAfterBerth(targets, t)
		kinds[t] = childKind{serve: "berth", env: env}
	}
	if err := run(*duration, *rounds, *conns, *threads, targets, kinds, *berthEnv); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// childKind says how a target's child process runs: which proxy it
// serves, from which binary (default: this one), with what environment.
type childKind struct {
	serve string
	bin   string
	env   string
}

// insertAfterBerth puts t after the last berth target, so variants run
// next to it within each round.
func insertAfterBerth(targets []string, t string) []string {
	i := slices.IndexFunc(targets, func(s string) bool { return s == "berth" })
	for i >= 0 && i+1 < len(targets) && (strings.HasPrefix(targets[i+1], "berth+") || targets[i+1] == "berth-before") {
		i++
	}
	return slices.Insert(targets, i+1, t)
}

// serveProxy is the child process: one proxy in front of upstream until
// SIGTERM or stdin closes.
func serveProxy(kind, listen, upstream, accessLog string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { io.Copy(io.Discard, os.Stdin); stop() }()
	switch kind {
	case "caddy":
		cfg := map[string]any{
			"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
			"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
			"apps": map[string]any{
				"tls": map[string]any{"disable_storage_check": true, "disable_storage_clean": true},
				"http": map[string]any{"servers": map[string]any{"bench": map[string]any{
					"listen":          []string{listen},
					"automatic_https": map[string]any{"disable": true},
					"routes": []any{map[string]any{"handle": []any{map[string]any{
						"handler":   "reverse_proxy",
						"upstreams": []any{map[string]any{"dial": upstream}},
					}}}},
				}}},
			},
		}
		b, _ := json.Marshal(cfg)
		if err := caddy.Load(b, true); err != nil {
			return err
		}
		fmt.Println("ready")
		<-ctx.Done()
		return caddy.Stop()
	case "berth", "berth-caddy", "berth-reverse-proxy":
		fe := map[string]router.Frontend{"berth": router.FrontendBerth, "berth-caddy": router.FrontendCaddy,
			"berth-reverse-proxy": router.FrontendReverseProxy}[kind]
		var logw io.Writer
		if accessLog != "" {
			f, err := os.Create(accessLog)
			if err != nil {
				return err
			}
			defer f.Close()
			logw = f
		}
		router.TuneRuntime() // as the berth router command does
		r, err := router.New(router.Options{
			HTTPAddr:      listen,
			Source:        router.NewStaticSource(router.Route{App: "bench", Release: 1, Upstreams: []string{upstream}}),
			AppsDomain:    "apps.test",
			Frontend:      fe,
			AccessLog:     logw,
			Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			CaddyLogLevel: "ERROR",
		})
		if err != nil {
			return err
		}
		if err := r.Start(ctx); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.WaitForRelease(wctx, "bench", 1); err != nil {
			return err
		}
		fmt.Println("ready")
		<-ctx.Done()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		return r.Stop(sctx)
	}
	return fmt.Errorf("unknown proxy %q", kind)
}

// result of one wrk run against one target.
type result struct {
	target           string
	rps              float64
	p50, p99         time.Duration
	requests         int64
	errors           int64 // socket errors + non-2xx
	cpuPerReq        float64
	backendCPUPerReq float64 // this process: the backend app
	newConnsPer1000  float64
}

func run(duration time.Duration, rounds, conns, threads int, targets []string, kinds map[string]childKind, berthEnv string) error {
	for _, bin := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(bin); err != nil && (bin == "wrk" || slices.Contains(targets, "nginx")) {
			return fmt.Errorf("%s not found: apt-get install wrk nginx", bin)
		}
	}
	dir, err := os.MkdirTemp("", "berth-bench-router-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The backend: a tiny Go app counting the connections it accepts.
	var accepts atomic.Int64
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	backend := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepts.Add(1)
			}
		},
	}
	go backend.Serve(bln)
	defer backend.Close()
	up := bln.Addr().String()

	// Start every proxy once; rounds reuse them.
	procs := map[string]*proxyProc{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, t := range targets {
		var p *proxyProc
		var err error
		switch t {
		case "direct":
			continue
		case "nginx":
			p, err = startNginx(dir, up)
		default:
			k, ok := kinds[t]
			if !ok {
				k = childKind{serve: t}
				if strings.HasPrefix(t, "berth") {
					k.env = berthEnv
				}
			}
			p, err = startChild(k, up, filepath.Join(dir, t+"-access.log"))
		}
		if err != nil {
			return fmt.Errorf("start %s: %w", t, err)
		}
		procs[t] = p
	}

	fmt.Printf("router benchmark: wrk -t%d -c%d -d%s, 2-byte response, %d round(s), %d CPUs, berth env %q, load average %s\n",
		threads, conns, duration, rounds, runtime.NumCPU(), berthEnv, loadAvg())
	defer func() { fmt.Printf("load average at the end: %s\n", loadAvg()) }()
	all := map[string][]result{}
	for round := range rounds {
		for _, t := range targets {
			addr, pid := up, 0
			if p := procs[t]; p != nil {
				addr, pid = p.addr, p.pid
			}
			// Warm up (connections, pools, JIT of nothing but caches), then measure.
			if _, err := runWrk(addr, threads, conns, time.Second); err != nil {
				return fmt.Errorf("%s warm-up: %w", t, err)
			}
			cpu0, err := cpuTicks(pid, procs[t])
			if err != nil {
				return err
			}
			self0, err := cpuTicks(os.Getpid(), nil)
			if err != nil {
				return err
			}
			acc0 := accepts.Load()
			res, err := runWrk(addr, threads, conns, duration)
			if err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
			cpu1, err := cpuTicks(pid, procs[t])
			if err != nil {
				return err
			}
			self1, err := cpuTicks(os.Getpid(), nil)
			if err != nil {
				return err
			}
			res.target = t
			if pid != 0 && res.requests > 0 {
				res.cpuPerReq = float64(cpu1-cpu0) / clockTicks * 1e6 / float64(res.requests)
			}
			if res.requests > 0 {
				res.backendCPUPerReq = float64(self1-self0) / clockTicks * 1e6 / float64(res.requests)
				res.newConnsPer1000 = float64(accepts.Load()-acc0) * 1000 / float64(res.requests)
			}
			all[t] = append(all[t], res)
			fmt.Fprintf(os.Stderr, "round %d %-20s %9.0f req/s  (load %s)\n", round+1, t, res.rps, loadAvg())
		}
	}

	// Absolute rates drift with the neighbours' load from round to round,
	// so ratios are taken within each round (every target ran in it, one
	// after another) and their median is shown; req/s, latency and CPU are
	// the medians of the rounds.
	med := map[string]result{}
	for t, rs := range all {
		med[t] = result{
			rps:              median(rs, func(r result) float64 { return r.rps }),
			p50:              time.Duration(median(rs, func(r result) float64 { return float64(r.p50) })),
			p99:              time.Duration(median(rs, func(r result) float64 { return float64(r.p99) })),
			cpuPerReq:        median(rs, func(r result) float64 { return r.cpuPerReq }),
			backendCPUPerReq: median(rs, func(r result) float64 { return r.backendCPUPerReq }),
			newConnsPer1000:  median(rs, func(r result) float64 { return r.newConnsPer1000 }),
		}
		for _, r := range rs {
			m := med[t]
			m.errors += r.errors
			med[t] = m
		}
	}
	ratio := func(t, base string) string {
		if len(all[base]) == 0 || len(all[t]) != len(all[base]) {
			return "-"
		}
		var rs []float64
		for i := range all[t] {
			rs = append(rs, all[t][i].rps/all[base][i].rps)
		}
		slices.Sort(rs)
		return fmt.Sprintf("%.2f", rs[len(rs)/2])
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\tvs direct\tvs nginx\tvs caddy\tp50\tp99\tproxy CPU µs/req\tbackend CPU µs/req\tnew upstream conns/1k req\terrors\t")
	for _, t := range targets {
		r, ok := med[t]
		if !ok {
			continue
		}
		cpu := "-"
		if t != "direct" {
			cpu = fmt.Sprintf("%.1f", r.cpuPerReq)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%.1f\t%.2f\t%d\t\n", t, r.rps, ratio(t, "direct"), ratio(t, "nginx"), ratio(t, "caddy"),
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), cpu, r.backendCPUPerReq, r.newConnsPer1000, r.errors)
	}
	tw.Flush()
	return nil
}

// loadAvg is the 1, 5 and 15 minute load averages: the neighbours' load
// moves absolute numbers (and, less, ratios), so every report says it.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func median(rs []result, f func(result) float64) float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// proxyProc is one proxy process under test.
type proxyProc struct {
	cmd     *exec.Cmd
	pid     int
	addr    string
	workers func() []int // nginx: CPU is in the workers too
	stop    func()
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startChild(k childKind, upstream, accessLog string) (*proxyProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	bin := k.bin
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	args := []string{"-serve", k.serve, "-listen", addr, "-upstream", upstream}
	if strings.HasPrefix(k.serve, "berth") {
		args = append(args, "-access-log", accessLog)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if k.env != "" {
		cmd.Env = append(os.Environ(), strings.Split(k.env, ",")...)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("child said %q", line)
		}
		ready <- err
		io.Copy(io.Discard, stdout)
	}()
	p := &proxyProc{cmd: cmd, pid: cmd.Process.Pid, addr: addr}
	p.stop = func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	select {
	case err := <-ready:
		if err != nil {
			p.stop()
			return nil, err
		}
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, errors.New("child not ready after 60s")
	}
	return p, nil
}

const nginxConf = `worker_processes auto;
daemon off;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events { worker_connections 4096; }
http {
  access_log {{dir}}/access.log combined buffer=64k flush=1s;
  client_body_temp_path {{dir}}/body;
  proxy_temp_path {{dir}}/proxy;
  fastcgi_temp_path {{dir}}/fastcgi;
  uwsgi_temp_path {{dir}}/uwsgi;
  scgi_temp_path {{dir}}/scgi;
  upstream app { server {{upstream}}; keepalive 256; keepalive_requests 100000; }
  server {
    listen {{listen}};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Request-ID $request_id;
    }
  }
}
`

func startNginx(dir, upstream string) (*proxyProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	ndir := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(ndir, 0o755); err != nil {
		return nil, err
	}
	conf := strings.NewReplacer("{{dir}}", ndir, "{{upstream}}", upstream, "{{listen}}", addr).Replace(nginxConf)
	confPath := filepath.Join(ndir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command("nginx", "-c", confPath, "-p", ndir)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proxyProc{cmd: cmd, pid: cmd.Process.Pid, addr: addr}
	p.workers = func() []int { return childPIDs(p.pid) }
	p.stop = func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("nginx not listening: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childPIDs lists the children of pid (nginx workers).
func childPIDs(pid int) []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

const clockTicks = 100 // USER_HZ on Linux

// cpuTicks is utime+stime of the proxy process (and nginx's workers).
func cpuTicks(pid int, p *proxyProc) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	pids := []int{pid}
	if p != nil && p.workers != nil {
		pids = append(pids, p.workers()...)
	}
	var total int64
	for _, id := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", id))
		if err != nil {
			return 0, err
		}
		// Fields after the parenthesised command name; utime and stime are
		// fields 14 and 15 of the whole line.
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		for _, i := range []int{11, 12} {
			n, err := strconv.ParseInt(fields[i], 10, 64)
			if err != nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reRequests = regexp.MustCompile(`(\d+) requests in`)
	reLatency  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	reSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk runs wrk with fixed arguments and parses its report.
func runWrk(addr string, threads, conns int, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	secs := max(1, int(d.Seconds()))
	out, err := exec.CommandContext(ctx, "wrk",
		"-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s",
		"--latency", "-H", "Host: "+benchHost, "http://"+addr+"/").CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	s := string(out)
	var r result
	if m := reRPS.FindStringSubmatch(s); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := reRequests.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	for _, m := range reLatency.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := reSocket.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			r.errors += n
		}
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	if r.rps == 0 {
		return r, fmt.Errorf("wrk: no result\n%s", s)
	}
	return r, nil
}
