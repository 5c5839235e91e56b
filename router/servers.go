package router

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/berthpaas/berth/cluster/api"
)

// Servers are the control-plane servers a router talks to. Calls go to
// the server that answered last and move on to the next one when it
// cannot be reached, so a router given every server keeps following the
// cluster while any of them is up.
type Servers struct {
	clients []*api.Client
	cur     atomic.Int64
}

// NewServers returns the servers of clients (at least one).
func NewServers(clients ...*api.Client) *Servers {
	return &Servers{clients: clients}
}

// Do calls f with one server's client after another until one answers:
// an API error is an answer (the server is up; it is returned as is), a
// transport error moves on. It returns the last error when none answers.
func (s *Servers) Do(ctx context.Context, f func(*api.Client) error) error {
	if len(s.clients) == 0 {
		return errors.New("no control-plane server configured")
	}
	start := s.cur.Load()
	var err error
	for i := range int64(len(s.clients)) {
		n := (start + i) % int64(len(s.clients))
		err = f(s.clients[n])
		var apiErr *api.Error
		if err == nil || errors.As(err, &apiErr) || ctx.Err() != nil {
			s.cur.Store(n)
			return err
		}
	}
	return err
}

// Addrs lists the servers' addresses.
func (s *Servers) Addrs() []string {
	out := make([]string, len(s.clients))
	for i, c := range s.clients {
		out[i] = c.Addr()
	}
	return out
}
