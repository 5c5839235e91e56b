package httpapi

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/scheduler"
)

// routerLogKeep is how many router lines are kept per app.
const routerLogKeep = 1000

// routerLogs keeps the last access-log lines routers shipped, per app, in
// this server's memory, and feeds `berth logs -f`. Routers ship to the
// leader (their POST is a write) and log reads go to the leader, so one
// server holds them; a leader change starts empty.
type routerLogs struct {
	mu   sync.Mutex
	apps map[string][]scheduler.LogLine
	subs map[string]map[chan scheduler.LogLine]struct{}
}

func newRouterLogs() *routerLogs {
	return &routerLogs{apps: map[string][]scheduler.LogLine{}, subs: map[string]map[chan scheduler.LogLine]struct{}{}}
}

func (l *routerLogs) add(app string, line scheduler.LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := append(l.apps[app], line)
	if len(lines) > routerLogKeep {
		lines = slices.Delete(lines, 0, len(lines)-routerLogKeep)
	}
	l.apps[app] = lines
	for ch := range l.subs[app] {
		select {
		case ch <- line:
		default: // a slow follower loses lines rather than slowing routers
		}
	}
}

// since returns the kept lines of app at or after t.
func (l *routerLogs) since(app string, t time.Time) []scheduler.LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []scheduler.LogLine
	for _, line := range l.apps[app] {
		if !line.Time.Before(t) {
			out = append(out, line)
		}
	}
	return out
}

// subscribe returns a channel of app's new lines until cancel.
func (l *routerLogs) subscribe(app string) (<-chan scheduler.LogLine, func()) {
	ch := make(chan scheduler.LogLine, 256)
	l.mu.Lock()
	if l.subs[app] == nil {
		l.subs[app] = map[chan scheduler.LogLine]struct{}{}
	}
	l.subs[app][ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		delete(l.subs[app], ch)
		l.mu.Unlock()
	}
}

func (a *API) routerLogsShip(w http.ResponseWriter, r *request) error {
	if _, err := r.require(auth.RouteTraffic, ""); err != nil {
		return err
	}
	var req api.RouterLogsRequest
	if err := decodeBody(r.Request, &req); err != nil {
		return err
	}
	if len(req.Lines) > api.MaxRouterLogBatch {
		return badRequest("at most %d lines per batch", api.MaxRouterLogBatch)
	}
	for _, line := range req.Lines {
		if api.ValidateAppName(line.App) != nil || len(line.Text) > 8<<10 {
			continue // one bad line must not cost the batch
		}
		a.routerLogs.add(line.App, scheduler.LogLine{Time: line.Time, Instance: "router", Text: line.Text})
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
