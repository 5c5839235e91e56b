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

// AppUpdate changes an app's settings; nil fields stay as they are.
type AppUpdate struct {
	Audited
	Name          string         `json:"name"`
	DeployBranch  *string        `json:"deploy_branch,omitempty"`
	DeployTimeout *time.Duration `json:"deploy_timeout,omitempty"`
	ForceHTTPS    *bool          `json:"force_https,omitempty"`
	HSTS          *bool          `json:"hsts,omitempty"`
	LB            *string        `json:"lb,omitempty"`
}

// Type implements Command.
func (AppUpdate) Type() MessageType { return AppUpdateType }

func applyAppUpdate(txn *state.Txn, c AppUpdate) (any, error) {
	var app *state.App
	var err error
	if c.DeployBranch != nil {
		if app, err = txn.UpdateApp(c.Name, *c.DeployBranch); err != nil {
			return nil, err
		}
	}
	if c.DeployTimeout != nil {
		if app, err = txn.SetDeployTimeout(c.Name, *c.DeployTimeout); err != nil {
			return nil, err
		}
	}
	if c.ForceHTTPS != nil || c.HSTS != nil || c.LB != nil {
		if app, err = txn.SetRouting(c.Name, c.ForceHTTPS, c.HSTS, c.LB); err != nil {
			return nil, err
		}
	}
	return app, nil
}

// Scale sets process counts and resources.
type Scale struct {
	Audited
	App       string                     `json:"app"`
	Counts    map[string]int             `json:"counts"`
	Resources map[string]state.Resources `json:"resources,omitempty"`
}

// Type implements Command.
func (Scale) Type() MessageType { return ScaleType }

func applyScale(txn *state.Txn, c Scale) (any, error) {
	return txn.Scale(c.App, c.Counts, c.Resources)
}

// CheckSet sets one process type's health check.
type CheckSet struct {
	Audited
	App     string      `json:"app"`
	Process string      `json:"process"`
	Check   state.Check `json:"check"`
}

// Type implements Command.
func (CheckSet) Type() MessageType { return CheckSetType }

func applyCheckSet(txn *state.Txn, c CheckSet) (any, error) {
	return txn.SetCheck(c.App, c.Process, c.Check)
}
