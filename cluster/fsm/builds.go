package fsm

import (
	"time"

	"github.com/berthpaas/berth/cluster/state"
)

// BuildStart records a running build; only one runs per app.
type BuildStart struct {
	Audited
	Build state.Build `json:"build"`
}

// Type implements Command.
func (BuildStart) Type() MessageType { return BuildStartType }

func applyBuildStart(txn *state.Txn, c BuildStart) (any, error) {
	return nil, txn.StartBuild(c.Build)
}

// BuildFinish records a build's outcome and output.
type BuildFinish struct {
	Audited
	ID      string           `json:"id"`
	Status  string           `json:"status"`
	Error   string           `json:"error,omitempty"`
	Output  string           `json:"output,omitempty"`
	Release uint64           `json:"release,omitempty"`
	Phases  map[string]int64 `json:"phases,omitempty"`
	Time    time.Time        `json:"time"`
}

// Type implements Command.
func (BuildFinish) Type() MessageType { return BuildFinishType }

func applyBuildFinish(txn *state.Txn, c BuildFinish) (any, error) {
	return txn.FinishBuild(c.ID, c.Status, c.Error, c.Output, c.Release, c.Phases, c.Time)
}
