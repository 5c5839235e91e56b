package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Server maps a raft server ID (its name) to its API address, so that
// followers know where to forward writes.
type Server struct {
	Name     string
	APIAddr  string
	RaftAddr string
}

// UpsertServer records a server's addresses.
func (t *Txn) UpsertServer(s Server) error {
	if err := t.txn.Insert(tableServers, &s); err != nil {
		return fmt.Errorf("insert server: %w", err)
	}
	return t.bump(tableServers)
}

// DeleteServer forgets a server.
func (t *Txn) DeleteServer(name string) error {
	if _, err := t.txn.DeleteAll(tableServers, "id", name); err != nil {
		return fmt.Errorf("delete server: %w", err)
	}
	return t.bump(tableServers)
}

// Servers lists known servers.
func (s *Snapshot) Servers(ws memdb.WatchSet) ([]*Server, error) {
	it, err := s.txn.Get(tableServers, "id")
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Server
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Server))
	}
	return out, nil
}

// Server returns one server's record, or nil.
func (s *Snapshot) Server(name string) *Server {
	raw, err := s.txn.First(tableServers, "id", name)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*Server)
}
