package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/berthpaas/berth/cluster/api"
)

// LogShipper is an access-log writer (Options.AccessLog) that sends each
// request's line to the control plane, where `berth logs` shows it as the
// app's "router" process, in the form Heroku's router logs have. It never
// blocks the router: lines wait in a bounded buffer and a goroutine ships
// them every Interval; when the control plane is away the oldest lines are
// dropped (a warning says how many).
type LogShipper struct {
	Servers  *Servers
	Router   string
	Interval time.Duration // default 1 s
	MaxLines int           // buffered lines kept at most, default 10,000
	Logger   *slog.Logger

	mu      sync.Mutex
	lines   []api.RouterLogLine
	dropped int
}

// accessLine is what a shipped line needs from an access-log record.
type accessLine struct {
	TS         time.Time `json:"ts"`
	RequestID  string    `json:"request_id"`
	App        string    `json:"app"`
	Release    uint64    `json:"release"`
	Upstream   string    `json:"upstream"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	URI        string    `json:"uri"`
	Remote     string    `json:"remote"`
	Status     int       `json:"status"`
	Bytes      int64     `json:"bytes"`
	DurationMS float64   `json:"duration_ms"`
}

// Write takes whole JSON lines from the router's access log.
func (s *LogShipper) Write(p []byte) (int, error) {
	n := len(p)
	max := s.MaxLines
	if max == 0 {
		max = 10000
	}
	var batch []api.RouterLogLine
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		var e accessLine
		if json.Unmarshal(line, &e) != nil || e.App == "" {
			continue // unknown hosts have no app: nothing to show
		}
		batch = append(batch, api.RouterLogLine{App: e.App, Time: e.TS, Text: fmt.Sprintf(
			"at=info method=%s path=%q host=%s request_id=%s fwd=%q release=v%d upstream=%s service=%.1fms status=%d bytes=%d",
			e.Method, e.URI, e.Host, e.RequestID, e.Remote, e.Release, e.Upstream, e.DurationMS, e.Status, e.Bytes)})
	}
	s.mu.Lock()
	s.lines = append(s.lines, batch...)
	if over := len(s.lines) - max; over > 0 {
		s.lines = s.lines[over:]
		s.dropped += over
	}
	s.mu.Unlock()
	return n, nil
}

// Run ships buffered lines until ctx ends.
func (s *LogShipper) Run(ctx context.Context) {
	every := s.Interval
	if every == 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		lines, dropped := s.lines, s.dropped
		if len(lines) > api.MaxRouterLogBatch {
			lines = lines[:api.MaxRouterLogBatch]
		}
		s.mu.Unlock()
		if len(lines) == 0 {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Servers.Do(sctx, func(c *api.Client) error {
			return c.ShipRouterLogs(sctx, api.RouterLogsRequest{Router: s.Router, Lines: lines})
		})
		cancel()
		if err != nil {
			if ctx.Err() == nil && s.Logger != nil {
				s.Logger.Warn("berth router: shipping access logs failed; keeping them for the next try", "err", err, "lines", len(lines))
			}
			continue
		}
		s.mu.Lock()
		// Lines appended meanwhile stay; drops meanwhile shifted the shipped ones.
		shift := s.dropped - dropped
		if shift < len(lines) {
			s.lines = s.lines[len(lines)-shift:]
		}
		s.mu.Unlock()
		if dropped > 0 && s.Logger != nil {
			s.Logger.Warn("berth router: access-log lines were dropped while the control plane was away", "dropped", dropped)
			s.mu.Lock()
			s.dropped -= dropped
			s.mu.Unlock()
		}
	}
}
