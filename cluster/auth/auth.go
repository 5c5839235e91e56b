// Package auth turns bearer tokens into identities and decides what an
// identity may do. Token secrets are random 256-bit values; only their
// SHA-256 is stored, which is enough for values with that much entropy.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/berthpaas/berth/cluster/api"
)

// Errors of authentication and authorisation.
var (
	ErrNoToken      = errors.New("no token")
	ErrUnknownToken = errors.New("unknown or revoked token")
	ErrForbidden    = errors.New("forbidden")
)

// secretPrefix makes berth tokens recognisable (e.g. by secret scanners).
const secretPrefix = "berth_"

// NewSecret returns a fresh token secret and an accessor ID.
func NewSecret() (secret, accessor string, err error) {
	b := make([]byte, 32+16)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generate token: %w", err)
	}
	return secretPrefix + hex.EncodeToString(b[:32]), hex.EncodeToString(b[32:]), nil
}

// HashSecret is the stored form of a secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Identity is an authenticated caller.
type Identity struct {
	AccessorID string
	Name       string
	Role       string
	Apps       []string
}

// Action is what a caller wants to do.
type Action int

// Actions, from least to most powerful.
const (
	ReadApp       Action = iota // see an app and its config keys
	ReadSecrets                 // see config values
	WriteApp                    // change an app's config, deploy it
	ManageApps                  // create and destroy apps
	ManageCluster               // tokens, audit of everything, cluster membership
	// RouteTraffic is outside the ladder above: read every app's routes
	// and use the shared certificate storage. Routers and admins have it.
	RouteTraffic
)

func (a Action) String() string {
	return [...]string{"read the app", "read config values", "change the app", "create or destroy apps", "manage the cluster", "route traffic (routes and certificates)"}[a]
}

// canTouch reports whether the identity's app list covers app.
func (id *Identity) canTouch(app string) bool {
	return slices.Contains(id.Apps, api.AllApps) || (app != "" && slices.Contains(id.Apps, app))
}

// Allowed reports whether the identity may perform action on app ("" when
// the action concerns no single app).
func (id *Identity) Allowed(action Action, app string) bool {
	switch id.Role {
	case api.RoleAdmin:
		return true
	case api.RoleDeployer:
		return action <= WriteApp && id.canTouch(app)
	case api.RoleViewer:
		return action == ReadApp && (len(id.Apps) == 0 || id.canTouch(app))
	case api.RoleRouter:
		return action == RouteTraffic
	}
	return false
}

// Check returns ErrForbidden, wrapped with an explanation, unless allowed.
func (id *Identity) Check(action Action, app string) error {
	if id.Allowed(action, app) {
		return nil
	}
	target := ""
	if app != "" {
		target = fmt.Sprintf(" on app %q", app)
	}
	return fmt.Errorf("token %q (role %s) may not %s%s: %w", id.Name, id.Role, action, target, ErrForbidden)
}

// SeesApp reports whether the identity may see app at all (for filtering lists).
func (id *Identity) SeesApp(app string) bool { return id.Allowed(ReadApp, app) }

// ValidateRole checks a role name and the apps that go with it.
func ValidateRole(role string, apps []string) error {
	switch role {
	case api.RoleAdmin:
		if len(apps) > 0 {
			return errors.New("an admin token applies to every app; drop --app")
		}
	case api.RoleDeployer:
		if len(apps) == 0 {
			return fmt.Errorf("a deployer token needs at least one --app (or --app '%s' for every app)", api.AllApps)
		}
	case api.RoleViewer:
	case api.RoleRouter:
		if len(apps) > 0 {
			return errors.New("a router token serves every app; drop --app")
		}
	default:
		return fmt.Errorf("unknown role %q: use admin, deployer, viewer or router", role)
	}
	for _, app := range apps {
		if app == api.AllApps {
			continue
		}
		if err := api.ValidateAppName(app); err != nil {
			return err
		}
	}
	return nil
}
