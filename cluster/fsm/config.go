package fsm

import (
	"time"

	"github.com/berthpaas/berth/cluster/state"
)

// ConfigUpdate sets and unsets config vars. Set holds values already sealed
// by the keyring: plaintext never reaches the log.
//
// If the app has been deployed, the change also records a new release with
// the previous image and the new config (Heroku semantics); Description,
// By and Time describe it.
type ConfigUpdate struct {
	Audited
	App         string            `json:"app"`
	Set         map[string][]byte `json:"set,omitempty"`
	Unset       []string          `json:"unset,omitempty"`
	Description string            `json:"description,omitempty"`
	By          string            `json:"by,omitempty"`
	Time        time.Time         `json:"time"`
}

// ConfigResult is what ConfigUpdate returns.
type ConfigResult struct {
	Config  *state.Config
	Release *state.Release // nil if the app was never deployed
}

// Type implements Command.
func (ConfigUpdate) Type() MessageType { return ConfigUpdateType }

func applyConfigUpdate(txn *state.Txn, c ConfigUpdate) (any, error) {
	cfg, err := txn.UpdateConfig(c.App, c.Set, c.Unset)
	if err != nil {
		return nil, err
	}
	rel, err := txn.ReleaseForConfigChange(c.App, c.Description, c.By, c.Time)
	if err != nil {
		return nil, err
	}
	return &ConfigResult{Config: cfg, Release: rel}, nil
}
