package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/berthpaas/berth/scheduler"
)

// Health rules: an instance is Healthy after one passing check and stops
// being Healthy after failThreshold consecutive failures. A process
// without a check is Healthy once it has run for minUptime.
const (
	failThreshold = 3
	minUptime     = time.Second
	// Until its first pass an instance is checked at least this often, so
	// a deploy waits for its instances no longer than it must.
	firstPassInterval = 250 * time.Millisecond
	// tcpSettle is how long a TCP check waits for the connection to be
	// closed on it; see probeTCP.
	tcpSettle = 200 * time.Millisecond
)

// health is an instance's record of checks since its process started.
type health struct {
	healthy bool
	passed  bool // at least once since the process started
	fails   int  // consecutive
	message string
}

// record adds one check result.
func (h health) record(err error) health {
	if err == nil {
		return health{healthy: true, passed: true}
	}
	h.fails++
	h.message = err.Error()
	if h.fails >= failThreshold {
		h.healthy = false
	}
	return h
}

// checker is the goroutine of one container: it inspects the container
// when told to (an event, a state change seen in a list) and runs its
// check every interval. It ends when the container is forgotten or the
// runtime closes.
func (r *Runtime) checker(ctx context.Context, t *inst) {
	defer r.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		case <-timer.C:
		}
		r.mu.Lock()
		need := t.needInspect
		t.needInspect = false
		r.mu.Unlock()
		if need && !r.inspect(ctx, t) {
			return
		}
		timer.Reset(r.checkOnce(ctx, t))
	}
}

// inspect refreshes t from the engine; false if the container is gone.
func (r *Runtime) inspect(ctx context.Context, t *inst) bool {
	ictx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	c, err := r.docker.ContainerInspect(ictx, t.id)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			r.forget(t.id)
			return false
		}
		if ctx.Err() == nil {
			r.log.Debug("inspect container", "id", short(t.id), "err", err)
			r.mu.Lock()
			t.needInspect = true // try again next round
			r.mu.Unlock()
		}
		return true
	}
	r.mu.Lock()
	t.apply(c)
	r.mu.Unlock()
	return true
}

// checkOnce runs t's check if its process runs and returns when to check
// next.
func (r *Runtime) checkOnce(ctx context.Context, t *inst) time.Duration {
	r.mu.Lock()
	c := t.meta.Check
	running := t.state == container.StateRunning && !t.stopping
	port, gen, started, passed := t.hostPort, t.gen, t.startedAt, t.health.passed
	r.mu.Unlock()
	if !running {
		return c.Interval
	}
	next := c.Interval
	if !passed {
		next = min(next, firstPassInterval)
	}
	var err error
	switch c.Type {
	case scheduler.CheckNone:
		if started.IsZero() {
			r.mu.Lock()
			t.needInspect = true
			r.mu.Unlock()
			return firstPassInterval
		}
		if up := time.Since(started); up < minUptime {
			return minUptime - up
		}
	default:
		if port == "" {
			r.mu.Lock()
			t.needInspect = true // ports appear once the container runs
			r.mu.Unlock()
			return firstPassInterval
		}
		err = r.probe(ctx, c, r.addr(port))
		if ctx.Err() != nil {
			return c.Interval
		}
	}
	r.mu.Lock()
	if t.gen == gen && !t.stopping {
		was := t.health.healthy
		t.health = t.health.record(err)
		if was != t.health.healthy {
			r.log.Info("instance health", "app", t.meta.App, "release", t.meta.Release,
				"instance", t.meta.Process+"."+fmt.Sprint(t.meta.Index), "healthy", t.health.healthy, "message", t.health.message)
		}
	}
	if t.health.passed {
		next = c.Interval
	}
	r.mu.Unlock()
	return next
}

// probe runs one network check against addr.
func (r *Runtime) probe(ctx context.Context, c scheduler.Check, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	if c.Type == scheduler.CheckTCP {
		return probeTCP(ctx, addr)
	}
	return probeHTTP(ctx, r.http, addr, c.Path)
}

// probeHTTP passes on a 2xx or 3xx answer to GET path.
func probeHTTP(ctx context.Context, hc *http.Client, addr, path string) error {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("User-Agent", "berth-health-check")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %s", path, describe(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	return nil
}

// probeTCP passes if a connection opens and is not closed at once. Docker's
// userland proxy accepts connections on the published port even when
// nothing listens inside the container, and closes them right away; a
// server that accepted keeps the connection open (or speaks first).
func probeTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect: %s", describe(err))
	}
	defer conn.Close()
	deadline := time.Now().Add(tcpSettle)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetReadDeadline(deadline)
	_, err = conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("connect: %s", describe(err))
}

// describe turns a network error into the few words an operator needs.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		strings.Contains(err.Error(), "server closed idle connection"): // net/http's word for EOF before a response
		return "connection closed without an answer (nothing listening on $PORT?)"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	}
	return err.Error()
}
