package fsm

import "github.com/berthpaas/berth/cluster/state"

// KeyAdd attaches an SSH public key to a token's identity.
type KeyAdd struct {
	Audited
	Key state.Key `json:"key"`
}

// Type implements Command.
func (KeyAdd) Type() MessageType { return KeyAddType }

func applyKeyAdd(txn *state.Txn, c KeyAdd) (any, error) {
	return nil, txn.AddKey(c.Key)
}

// KeyRemove deletes one of an owner's keys by name.
type KeyRemove struct {
	Audited
	Owner string `json:"owner"`
	Name  string `json:"name"`
}

// Type implements Command.
func (KeyRemove) Type() MessageType { return KeyRemoveType }

func applyKeyRemove(txn *state.Txn, c KeyRemove) (any, error) {
	return nil, txn.RemoveKey(c.Owner, c.Name)
}
