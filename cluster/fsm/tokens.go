package fsm

import "github.com/berthpaas/berth/cluster/state"

// TokenCreate stores a new token (its secret already hashed).
type TokenCreate struct {
	Audited
	Token state.Token `json:"token"`
}

// Type implements Command.
func (TokenCreate) Type() MessageType { return TokenCreateType }

func applyTokenCreate(txn *state.Txn, c TokenCreate) (any, error) {
	return nil, txn.CreateToken(&c.Token)
}

// TokenRevoke deletes a token by accessor ID or name.
type TokenRevoke struct {
	Audited
	IDOrName string `json:"id_or_name"`
}

// Type implements Command.
func (TokenRevoke) Type() MessageType { return TokenRevokeType }

func applyTokenRevoke(txn *state.Txn, c TokenRevoke) (any, error) {
	return txn.DeleteToken(c.IDOrName)
}

// ACLBootstrap creates the root token, once per cluster.
type ACLBootstrap struct {
	Audited
	Token state.Token `json:"token"`
}

// Type implements Command.
func (ACLBootstrap) Type() MessageType { return ACLBootstrapType }

func applyACLBootstrap(txn *state.Txn, c ACLBootstrap) (any, error) {
	if err := txn.ACLBootstrap(); err != nil {
		return nil, err
	}
	return nil, txn.CreateToken(&c.Token)
}
