package fsm

import "github.com/berthpaas/berth/cluster/state"

// ServerUpsert records a server's API and raft addresses.
type ServerUpsert struct {
	Audited
	Server state.Server `json:"server"`
}

// Type implements Command.
func (ServerUpsert) Type() MessageType { return ServerUpsertType }

func applyServerUpsert(txn *state.Txn, c ServerUpsert) (any, error) {
	return nil, txn.UpsertServer(c.Server)
}

// ServerRemove forgets a server that left the cluster.
type ServerRemove struct {
	Audited
	Name string `json:"name"`
}

// Type implements Command.
func (ServerRemove) Type() MessageType { return ServerRemoveType }

func applyServerRemove(txn *state.Txn, c ServerRemove) (any, error) {
	return nil, txn.DeleteServer(c.Name)
}
