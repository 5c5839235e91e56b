package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/berthpaas/berth/scheduler"
)

// inst is what the runtime knows of one container: what the engine said
// last, and the health its checks found. The first fields are set once;
// those from state on are guarded by Runtime.mu.
type inst struct {
	id      string
	meta    meta
	created time.Time
	kick    chan struct{} // wakes the checker (buffered 1)
	cancel  context.CancelFunc

	// The engine's view.
	state       container.ContainerState
	status      string // "Up 3 seconds", "Exited (1) 2 seconds ago"
	exitCode    int
	oom         bool
	engineErr   string // why the engine could not start it
	startedAt   time.Time
	hostPort    string
	needInspect bool

	// Health. gen changes whenever the process behind the container
	// changes (a restart, an exit), so a check that was in flight then is
	// ignored.
	gen      uint64
	health   health
	stopping bool
	addedAt  time.Time
}

// live says the container fills its slot: it runs, or the engine will
// restart it.
func (t *inst) live() bool {
	switch t.state {
	case container.StateRunning, container.StateRestarting, container.StatePaused:
		return true
	case container.StateCreated:
		// Just created by a Start in progress (ours is serialised, so this
		// is another server's) counts; one the engine could not start
		// does not.
		return t.engineErr == "" && time.Since(t.created) < engineTimeout
	}
	return false
}

// failedStart says the container will not become healthy on its own: it
// exited, or the engine could not start it.
func (t *inst) failedStart() bool {
	switch t.state {
	case container.StateExited, container.StateDead, container.StateRestarting:
		return true
	case container.StateCreated:
		return t.engineErr != ""
	}
	return false
}

// track returns the tracked container for id, adding it (and starting its
// health checks) if new.
func (r *Runtime) track(id string, m meta, created time.Time) *inst {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.trackLocked(id, m, created)
}

func (r *Runtime) trackLocked(id string, m meta, created time.Time) *inst {
	if t := r.insts[id]; t != nil {
		return t
	}
	t := &inst{
		id:          id,
		meta:        m,
		created:     created,
		kick:        make(chan struct{}, 1),
		state:       container.StateCreated,
		needInspect: true,
		addedAt:     time.Now(),
	}
	r.insts[id] = t
	if !r.closed && !m.Run {
		ctx, cancel := context.WithCancel(r.ctx)
		t.cancel = cancel
		r.wg.Add(1)
		go r.checker(ctx, t)
	}
	return t
}

// forget drops a removed container and stops its checks.
func (r *Runtime) forget(id string) {
	r.mu.Lock()
	t := r.insts[id]
	delete(r.insts, id)
	r.mu.Unlock()
	if t != nil && t.cancel != nil {
		t.cancel()
	}
}

// refreshSoon makes t's checker inspect the container now.
func (r *Runtime) refreshSoon(t *inst) {
	r.mu.Lock()
	t.needInspect = true
	r.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// markStopping takes containers out of (or back into) discovery.
func (r *Runtime) markStopping(ids []string, stopping bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if t := r.insts[id]; t != nil {
			t.stopping = stopping
			if stopping {
				t.gen++
				t.health = health{message: t.health.message}
			}
		}
	}
}

// observe records a container as the engine's list shows it; nil if it is
// not one of berth's.
func (r *Runtime) observe(c container.Summary) *inst {
	m, ok := parseLabels(c.Labels)
	if !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.trackLocked(c.ID, m, time.Unix(c.Created, 0))
	changed := t.state != c.State
	t.state = c.State
	t.status = c.Status
	t.hostPort = ""
	for _, p := range c.Ports {
		if p.PrivatePort == scheduler.Port && p.Type == "tcp" && p.PublicPort != 0 {
			t.hostPort = strconv.Itoa(int(p.PublicPort))
			break
		}
	}
	if c.State != container.StateRunning {
		if code, ok := exitCodeOf(c.Status); ok {
			t.exitCode = code
		}
		t.down()
	}
	if changed {
		t.needInspect = true
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
	return t
}

// down records that no process runs behind the container.
func (t *inst) down() {
	if t.health.healthy || t.health.fails > 0 {
		t.gen++
	}
	msg := exitMessage(t.state, t.exitCode, t.oom, t.engineErr)
	if msg == "" {
		msg = t.health.message
	}
	t.health = health{message: msg}
}

// apply records what ContainerInspect said.
func (t *inst) apply(c container.InspectResponse) {
	if c.ContainerJSONBase == nil || c.State == nil {
		return
	}
	st := c.State
	t.state = st.Status
	t.exitCode = st.ExitCode
	t.oom = st.OOMKilled
	t.engineErr = st.Error
	if started, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && started.Year() > 1 && !started.Equal(t.startedAt) {
		// A new process: it must pass its check again. The last failure
		// (an exit, say) stays as the message until it does.
		t.startedAt = started
		t.gen++
		t.health = health{message: t.health.message}
	}
	if c.NetworkSettings != nil {
		t.hostPort = ""
		for _, b := range c.NetworkSettings.Ports[containerPort] {
			if b.HostPort != "" {
				t.hostPort = b.HostPort
				break
			}
		}
	}
	if st.Status != container.StateRunning {
		t.down()
	}
}

var exitStatusRE = regexp.MustCompile(`^(?:Exited|Restarting) \((-?\d+)\)`)

// exitCodeOf reads the exit code from a list status like "Exited (1) 2
// seconds ago".
func exitCodeOf(status string) (int, bool) {
	m := exitStatusRE.FindStringSubmatch(status)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

// exitMessage explains a container that is not running; "" if it runs or
// was never started.
func exitMessage(state container.ContainerState, code int, oom bool, engineErr string) string {
	if engineErr != "" {
		return engineErr
	}
	var msg string
	switch state {
	case container.StateExited, container.StateRestarting, container.StateDead:
		msg = "exited with code " + strconv.Itoa(code)
		if oom {
			msg += " (out of memory)"
		} else if code == 137 {
			msg += " (killed)"
		}
		switch state {
		case container.StateRestarting:
			msg += "; restarting"
		case container.StateDead:
			msg += "; dead"
		}
	}
	return msg
}

// instanceState maps the engine's state to an instance's.
func instanceState(state container.ContainerState, stopping bool, exitCode int, engineErr string) string {
	switch {
	case stopping || state == container.StateRemoving:
		return scheduler.StateStopping
	case state == container.StateRunning:
		return scheduler.StateRunning
	case state == container.StateCreated && engineErr != "":
		return scheduler.StateFailed
	case state == container.StateCreated, state == container.StatePaused:
		return scheduler.StatePending
	case state == container.StateExited && exitCode == 0:
		return scheduler.StateExited
	}
	return scheduler.StateFailed // restarting after a crash, exited non-zero, dead
}

// viewLocked renders t for Instances; r.mu is held.
func (r *Runtime) viewLocked(t *inst) scheduler.Instance {
	state := instanceState(t.state, t.stopping, t.exitCode, t.engineErr)
	in := scheduler.Instance{
		ID:        t.id,
		App:       t.meta.App,
		Process:   t.meta.Process,
		Index:     t.meta.Index,
		Release:   t.meta.Release,
		Node:      r.cfg.Node,
		State:     state,
		Healthy:   t.health.healthy && state == scheduler.StateRunning,
		StartedAt: t.startedAt,
		Message:   t.health.message,
	}
	if in.StartedAt.IsZero() {
		in.StartedAt = t.created
	}
	if t.hostPort != "" && (state == scheduler.StateRunning || state == scheduler.StateStopping) {
		in.Addr = r.addr(t.hostPort)
	}
	if in.Healthy {
		in.Message = ""
	}
	return in
}

// addr is where the host reaches a published port.
func (r *Runtime) addr(port string) string {
	host := r.cfg.HostIP
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func pullOptions(auth string) image.PullOptions {
	return image.PullOptions{RegistryAuth: auth}
}

// decodeStream reads an engine JSON progress stream to its end and returns
// the error it reports, if any.
func decodeStream(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read the engine's output: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return fmt.Errorf("%s", strings.TrimSpace(m.ErrorDetail.Message))
		}
		if m.Error != "" {
			return fmt.Errorf("%s", strings.TrimSpace(m.Error))
		}
	}
}
