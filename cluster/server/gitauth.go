package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/gitreceive"
	"github.com/berthpaas/berth/cluster/state"
	gossh "golang.org/x/crypto/ssh"
)

// gitAuth answers the git endpoint's questions from this server's state: a
// key acts with the rights of the token it was added with, and stops working
// when that token is revoked.
type gitAuth struct{ s *Server }

var _ gitreceive.Auth = gitAuth{}

func (g gitAuth) snap() *state.Snapshot { return g.s.node.FSM().State().Snapshot() }

func (g gitAuth) Authenticate(key gossh.PublicKey) (gitreceive.Caller, error) {
	fp := gossh.FingerprintSHA256(key)
	snap := g.snap()
	k, err := snap.KeyByFingerprint(fp)
	if err != nil {
		return gitreceive.Caller{}, fmt.Errorf("key %s is not registered; add it with 'berth keys add'", fp)
	}
	tok, err := snap.TokenByAccessor(k.Owner)
	if err != nil {
		return gitreceive.Caller{}, fmt.Errorf("key %s belongs to a revoked token", fp)
	}
	return gitreceive.Caller{Name: tok.Name, KeyFingerprint: fp, TokenAccessor: tok.AccessorID}, nil
}

func (g gitAuth) Authorize(_ context.Context, c gitreceive.Caller, app string) error {
	if err := api.ValidateAppName(app); err != nil {
		return err
	}
	snap := g.snap()
	tok, err := snap.TokenByAccessor(c.TokenAccessor)
	if err != nil {
		return errors.New("the token of this key was revoked")
	}
	id := &auth.Identity{AccessorID: tok.AccessorID, Name: tok.Name, Role: tok.Role, Apps: tok.Apps}
	if err := id.Check(auth.WriteApp, app); err != nil {
		return fmt.Errorf("%s may not deploy %s", tok.Name, app)
	}
	if _, _, err := snap.App(nil, app); err != nil {
		return fmt.Errorf("no app named %s; create it with 'berth apps create %s'", app, app)
	}
	return nil
}

func (g gitAuth) DeployBranches(_ context.Context, app string) ([]string, error) {
	a, _, err := g.snap().App(nil, app)
	if err != nil {
		return nil, err
	}
	if a.DeployBranch != "" {
		return []string{a.DeployBranch}, nil
	}
	return []string{"main", "master"}, nil
}
