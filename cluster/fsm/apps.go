package fsm

import (
	"time"

	"github.com/berthpaas/berth/cluster/state"
)

// AppCreate creates an app.
type AppCreate struct {
	Audited
	Name         string    `json:"name"`
	DeployBranch string    `json:"deploy_branch,omitempty"`
	Time         time.Time `json:"time"`
}

// Type implements Command.
func (AppCreate) Type() MessageType { return AppCreateType }

func applyAppCreate(txn *state.Txn, c AppCreate) (any, error) {
	app, err := txn.CreateApp(c.Name, c.Time)
	if err != nil || c.DeployBranch == "" {
		return app, err
	}
	return txn.UpdateApp(c.Name, c.DeployBranch)
}

// AppDestroy deletes an app with its config.
type AppDestroy struct {
	Audited
	Name string `json:"name"`
}

// Type implements Command.
func (AppDestroy) Type() MessageType { return AppDestroyType }

func applyAppDestroy(txn *state.Txn, c AppDestroy) (any, error) {
	return nil, txn.DeleteApp(c.Name)
}

// AppUpdate changes an app's settings.
type AppUpdate struct {
	Audited
	Name         string `json:"name"`
	DeployBranch string `json:"deploy_branch"`
}

// Type implements Command.
func (AppUpdate) Type() MessageType { return AppUpdateType }

func applyAppUpdate(txn *state.Txn, c AppUpdate) (any, error) {
	return txn.UpdateApp(c.Name, c.DeployBranch)
}
