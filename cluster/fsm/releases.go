package fsm

import (
	"time"

	"github.com/berthpaas/berth/cluster/state"
)

// Release records a new release of a built or imported image; the store
// numbers it and copies the app's current (sealed) config into it.
type Release struct {
	Audited
	Release state.NewRelease `json:"release"`
}

// Type implements Command.
func (Release) Type() MessageType { return ReleaseType }

func applyRelease(txn *state.Txn, c Release) (any, error) {
	return txn.CreateRelease(c.Release)
}

// Rollback records a new release with an older release's image, config and
// processes, and restores that config as the app's config.
type Rollback struct {
	Audited
	App     string    `json:"app"`
	Version uint64    `json:"version"` // 0: the release before the latest
	By      string    `json:"by"`
	Time    time.Time `json:"time"`
}

// Type implements Command.
func (Rollback) Type() MessageType { return RollbackType }

func applyRollback(txn *state.Txn, c Rollback) (any, error) {
	return txn.Rollback(c.App, c.Version, c.By, c.Time)
}

// Deploy advances a deploy; its cutover step makes the release active.
type Deploy struct {
	Audited
	ID    string    `json:"id"`
	State string    `json:"state"`
	Note  string    `json:"note,omitempty"`
	Time  time.Time `json:"time"`
}

// Type implements Command.
func (Deploy) Type() MessageType { return DeployType }

func applyDeploy(txn *state.Txn, c Deploy) (any, error) {
	return txn.AdvanceDeploy(c.ID, c.State, c.Note, c.Time)
}
