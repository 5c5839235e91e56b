package docker

import (
	"context"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// How the runtime keeps up with the engine: events say at once that a
// container started, died or went away; a full list every resyncEvery
// catches what events missed (the stream reconnects after an engine
// restart) and adopts containers nobody asked about yet.
const (
	resyncEvery  = 5 * time.Second
	reconnectGap = time.Second
	// A container this young may be missing from a list that started
	// before it was created; it is not forgotten for that.
	forgetGrace = 10 * time.Second
)

// watch is the runtime's event loop; it runs until Close.
func (r *Runtime) watch() {
	defer r.wg.Done()
	r.negotiate(r.ctx)
	for r.ctx.Err() == nil {
		r.watchOnce()
		select {
		case <-r.ctx.Done():
		case <-time.After(reconnectGap):
		}
	}
}

// watchOnce follows one event stream until it fails.
func (r *Runtime) watchOnce() {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	// List first, to know that the engine is there and so that the
	// client's lazy version negotiation (if it had failed earlier) is over
	// before Events reads the version; list again after subscribing, so
	// nothing falls between the two.
	if !r.resync(ctx) {
		return
	}
	msgs, errs := r.docker.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", labelCluster+"="+r.cfg.Cluster),
	)})
	r.resync(ctx)
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			r.event(m)
		case err := <-errs:
			if ctx.Err() == nil {
				r.log.Warn("docker events", "err", err)
			}
			return
		case <-tick.C:
			r.resync(ctx)
		}
	}
}

// event handles one container event.
func (r *Runtime) event(m events.Message) {
	id := m.Actor.ID
	r.mu.Lock()
	t := r.insts[id]
	r.mu.Unlock()
	if t == nil {
		return // the next list adopts it
	}
	switch action := string(m.Action); {
	case action == string(events.ActionDestroy):
		r.forget(id)
	case action == string(events.ActionStart), action == string(events.ActionDie),
		action == string(events.ActionOOM), action == string(events.ActionRestart),
		action == string(events.ActionStop), action == string(events.ActionPause),
		action == string(events.ActionUnPause), strings.HasPrefix(action, "health_status"):
		r.refreshSoon(t)
	}
}

// resync lists the cluster's containers, adopting new ones and forgetting
// removed ones. It says whether the engine answered.
func (r *Runtime) resync(ctx context.Context) bool {
	ts, err := r.list(ctx, listFilter{runs: true})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("list containers", "err", err)
		}
		return false
	}
	seen := make(map[string]bool, len(ts))
	for _, t := range ts {
		seen[t.id] = true
	}
	var gone []string
	r.mu.Lock()
	for id, t := range r.insts {
		if !seen[id] && time.Since(t.addedAt) > forgetGrace {
			gone = append(gone, id)
		}
	}
	r.mu.Unlock()
	for _, id := range gone {
		r.forget(id)
	}
	return true
}
