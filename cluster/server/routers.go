package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/hashicorp/go-memdb"
)

// waitRouters is the deployer's router acknowledgement: it returns once
// every live router (one that reported within api.RouterLiveWindow) serves
// a route table at least as new as the one that holds app's cutover to
// release, or when RouterAckTimeout ends (then old instances still drain:
// a router that stopped answering must not block deploys forever). With
// no live router it returns at once.
func (s *Server) waitRouters(ctx context.Context, app string, release uint64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.RouterAckTimeout))
	defer cancel()
	target := s.node.FSM().State().Snapshot().RoutesIndex(nil)
	for {
		store := s.node.FSM().State()
		ws := memdb.NewWatchSet()
		ws.Add(store.AbandonCh())
		routers, _, err := store.Snapshot().Routers(ws)
		if err != nil {
			return err
		}
		var behind []string
		liveSince := time.Now().Add(-api.RouterLiveWindow)
		for _, r := range routers {
			if r.SeenAt.After(liveSince) && r.Applied < target {
				behind = append(behind, fmt.Sprintf("%s (serves index %d)", r.Name, r.Applied))
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if err := ws.WatchCtx(ctx); err != nil {
			return fmt.Errorf("routers not yet serving %s v%d (index %d) after %s: %s", app, release, target,
				time.Duration(s.cfg.RouterAckTimeout), strings.Join(behind, ", "))
		}
	}
}
