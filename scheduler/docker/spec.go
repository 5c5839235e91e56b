package docker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/berthpaas/berth/scheduler"
)

// Labels on every container the runtime creates. Everything the runtime
// needs to know about a container is in its labels, so a new Runtime (a
// restarted server) adopts what an old one started without any state of
// its own.
const (
	labelCluster       = "berth.cluster"
	labelApp           = "berth.app"
	labelRelease       = "berth.release"
	labelProcess       = "berth.process"
	labelIndex         = "berth.index"
	labelCheckType     = "berth.check.type"
	labelCheckPath     = "berth.check.path"
	labelCheckInterval = "berth.check.interval"
	labelCheckTimeout  = "berth.check.timeout"
	labelKillTimeout   = "berth.kill-timeout"
	// labelRun marks one-off containers of Run; they are not instances.
	labelRun = "berth.run"
)

// Defaults of a process that sets no limits, and of a release without a
// kill timeout.
const (
	defaultMemoryMB    = 256
	defaultCPU         = 100 // MHz, used as CPU shares like Nomad's docker driver
	defaultKillTimeout = 10 * time.Second
	defaultInterval    = time.Second
	defaultTimeout     = 2 * time.Second
)

// containerPort is $PORT as Docker names it.
var containerPort = nat.Port(strconv.Itoa(scheduler.Port) + "/tcp")

// ErrInvalid is scheduler.ErrInvalid: a malformed release or name.
var ErrInvalid = scheduler.ErrInvalid

func validApp(app string) error { return scheduler.ValidateApp(app) }

func validRelease(rel scheduler.Release) error { return scheduler.ValidateRelease(rel) }

// meta is what a container's labels say about it.
type meta struct {
	App         string
	Release     uint64
	Process     string
	Index       int
	Check       scheduler.Check
	KillTimeout time.Duration
	Run         bool // a one-off container of Run
}

// labels renders m for a container of cluster.
func (m meta) labels(cluster string) map[string]string {
	l := map[string]string{
		labelCluster:     cluster,
		labelApp:         m.App,
		labelRelease:     strconv.FormatUint(m.Release, 10),
		labelKillTimeout: m.KillTimeout.String(),
	}
	if m.Run {
		l[labelRun] = "true"
		return l
	}
	l[labelProcess] = m.Process
	l[labelIndex] = strconv.Itoa(m.Index)
	l[labelCheckType] = m.Check.Type
	l[labelCheckPath] = m.Check.Path
	l[labelCheckInterval] = m.Check.Interval.String()
	l[labelCheckTimeout] = m.Check.Timeout.String()
	return l
}

// parseLabels reads a container's labels; ok is false for a container that
// is not berth's (or was labelled by something else).
func parseLabels(l map[string]string) (m meta, ok bool) {
	m.App = l[labelApp]
	if validApp(m.App) != nil {
		return meta{}, false
	}
	rel, err := strconv.ParseUint(l[labelRelease], 10, 64)
	if err != nil {
		return meta{}, false
	}
	m.Release = rel
	m.KillTimeout, err = time.ParseDuration(l[labelKillTimeout])
	if err != nil || m.KillTimeout <= 0 {
		m.KillTimeout = defaultKillTimeout
	}
	if l[labelRun] == "true" {
		m.Run = true
		return m, true
	}
	m.Process = l[labelProcess]
	if scheduler.ValidateProcess(m.Process) != nil {
		return meta{}, false
	}
	if m.Index, err = strconv.Atoi(l[labelIndex]); err != nil || m.Index < 1 {
		return meta{}, false
	}
	m.Check = scheduler.Check{Type: l[labelCheckType], Path: l[labelCheckPath]}
	m.Check.Interval, _ = time.ParseDuration(l[labelCheckInterval])
	m.Check.Timeout, _ = time.ParseDuration(l[labelCheckTimeout])
	m.Check = withCheckDefaults(m.Check, m.Process)
	return m, true
}

// checkOf is p's check with defaults filled in.
func checkOf(p scheduler.Process) scheduler.Check {
	return withCheckDefaults(p.Check, p.Name)
}

func withCheckDefaults(c scheduler.Check, process string) scheduler.Check {
	if c.Type == "" {
		c = scheduler.DefaultCheck(process)
	}
	if c.Interval <= 0 {
		c.Interval = defaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	if c.Type == scheduler.CheckHTTP && c.Path == "" {
		c.Path = "/"
	}
	if c.Type != scheduler.CheckHTTP {
		c.Path = ""
	}
	return c
}

// published says whether a process's port is published on the host: web,
// and any process the runtime checks over the network.
func published(process string, c scheduler.Check) bool {
	return process == "web" || c.Type == scheduler.CheckHTTP || c.Type == scheduler.CheckTCP
}

// randomSuffix makes container names unique across replacements.
func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// containerName is berth-APP-vVERSION-PROCESS.INDEX-SUFFIX; every part is
// checked, so the name is a valid Docker name.
func containerName(app string, version uint64, process string, index int, suffix string) string {
	return fmt.Sprintf("berth-%s-v%d-%s.%d-%s", app, version, process, index, suffix)
}

// runName names a one-off container: berth-APP-vVERSION-run-SUFFIX.
func runName(app string, version uint64, suffix string) string {
	return fmt.Sprintf("berth-%s-v%d-run-%s", app, version, suffix)
}

// environment is rel's config plus PORT, sorted so that identical releases
// give identical containers.
func environment(rel scheduler.Release) []string {
	env := make([]string, 0, len(rel.Env)+1)
	for _, k := range slices.Sorted(maps.Keys(rel.Env)) {
		if k == "PORT" {
			continue // the runtime decides the port
		}
		env = append(env, k+"="+rel.Env[k])
	}
	return append(env, "PORT="+strconv.Itoa(scheduler.Port))
}

func killTimeout(rel scheduler.Release) time.Duration {
	if rel.KillTimeout <= 0 {
		return defaultKillTimeout
	}
	return rel.KillTimeout
}

// stopSeconds is the kill timeout as Docker takes it, rounded up.
func stopSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// spec is what the runtime asks Docker to create for one instance.
type spec struct {
	Name   string
	Config *container.Config
	Host   *container.HostConfig
}

// instanceSpec builds the container of process p's instance index of rel.
func (c *Config) instanceSpec(rel scheduler.Release, p scheduler.Process, index int, suffix string) spec {
	check := checkOf(p)
	kt := killTimeout(rel)
	m := meta{App: rel.App, Release: rel.Version, Process: p.Name, Index: index, Check: check, KillTimeout: kt}
	secs := stopSeconds(kt)
	cfg := &container.Config{
		Image:       rel.Image,
		Env:         environment(rel),
		Labels:      m.labels(c.Cluster),
		StopTimeout: &secs,
	}
	if p.Command != "" {
		// Procfile commands are shell text, as on Heroku; the image needs
		// /bin/sh (buildpack images have it).
		cfg.Entrypoint = []string{"/bin/sh", "-c"}
		cfg.Cmd = []string{p.Command}
	}
	host := c.hostConfig(p.MemoryMB, p.CPU)
	host.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	if published(p.Name, check) {
		cfg.ExposedPorts = nat.PortSet{containerPort: struct{}{}}
		host.PortBindings = nat.PortMap{containerPort: {{HostIP: c.HostIP, HostPort: ""}}}
	}
	return spec{Name: containerName(rel.App, rel.Version, p.Name, index, suffix), Config: cfg, Host: host}
}

// hostConfig has what every container of the runtime shares.
func (c *Config) hostConfig(memoryMB, cpu int) *container.HostConfig {
	if memoryMB <= 0 {
		memoryMB = defaultMemoryMB
	}
	if cpu <= 0 {
		cpu = defaultCPU
	}
	cpu = max(cpu, 2) // the kernel's minimum of CPU shares
	init := !c.NoInit
	return &container.HostConfig{
		NetworkMode: container.NetworkMode(c.Network),
		// An init process forwards SIGTERM to `/bin/sh -c` commands and
		// reaps zombies; apps rarely do either as PID 1.
		Init: &init,
		Resources: container.Resources{
			Memory:    int64(memoryMB) << 20,
			CPUShares: int64(cpu),
		},
		// Bounded logs: disks full of container logs are a classic.
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
	}
}

// have is an existing container of a release, as planning sees it.
type have struct {
	ID       string
	Process  string
	Index    int
	Live     bool // running, restarting or paused: it counts for its slot
	Healthy  bool
	Stopping bool
	Created  time.Time
}

// slot is one instance to create.
type slot struct {
	Process string
	Index   int
}

// plan is how Start converges a release to its formation.
type plan struct {
	Create []slot   // missing instances, by process then index
	Remove []string // dead containers to remove first (their slot is recreated if wanted)
	Stop   []string // live containers beyond the formation, or duplicates
	Keep   []string // live containers that stay
}

// planFormation compares a release's wanted formation with its existing
// containers. It is pure: Start does what it says. Containers already
// stopping are left to whoever stops them and fill no slot. Of two live
// containers for one slot (two servers raced), the healthy, then the
// older, one stays.
func planFormation(rel scheduler.Release, existing []have) plan {
	want := map[string]int{}
	for _, p := range rel.Processes {
		want[p.Name] = p.Count
	}
	bySlot := map[slot][]have{}
	var p plan
	for _, h := range existing {
		if h.Stopping {
			continue
		}
		if !h.Live {
			p.Remove = append(p.Remove, h.ID)
			continue
		}
		s := slot{h.Process, h.Index}
		if h.Index > want[h.Process] {
			p.Stop = append(p.Stop, h.ID)
			continue
		}
		bySlot[s] = append(bySlot[s], h)
	}
	for _, proc := range rel.Processes {
		for i := 1; i <= proc.Count; i++ {
			s := slot{proc.Name, i}
			hs := bySlot[s]
			if len(hs) == 0 {
				p.Create = append(p.Create, s)
				continue
			}
			slices.SortStableFunc(hs, func(a, b have) int {
				if a.Healthy != b.Healthy {
					if a.Healthy {
						return -1
					}
					return 1
				}
				return a.Created.Compare(b.Created)
			})
			p.Keep = append(p.Keep, hs[0].ID)
			for _, d := range hs[1:] {
				p.Stop = append(p.Stop, d.ID)
			}
		}
	}
	slices.Sort(p.Remove)
	slices.Sort(p.Stop)
	slices.Sort(p.Keep)
	return p
}
