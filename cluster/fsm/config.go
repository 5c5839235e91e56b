package fsm

import "github.com/berthpaas/berth/cluster/state"

// ConfigUpdate sets and unsets config vars. Set holds values already sealed
// by the keyring: plaintext never reaches the log.
type ConfigUpdate struct {
	Audited
	App   string            `json:"app"`
	Set   map[string][]byte `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`
}

// Type implements Command.
func (ConfigUpdate) Type() MessageType { return ConfigUpdateType }

func applyConfigUpdate(txn *state.Txn, c ConfigUpdate) (any, error) {
	return txn.UpdateConfig(c.App, c.Set, c.Unset)
}
