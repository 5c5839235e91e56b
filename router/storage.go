package router

import (
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
)

func init() {
	caddy.RegisterModule((*Storage)(nil))
}

// Storage is the "caddy.storage.berth" module: Caddy's certificate storage
// (certificates, keys, ACME accounts, HTTP-01 challenge tokens, locks)
// delegated to the certmagic.Storage a Router was given in
// Options.CertStorage — normally the control plane's, so that every router
// sees the same certificates, solves each other's challenges and takes the
// same locks (one order per name, whichever router asks first).
type Storage struct {
	// Instance names the Router whose storage to use.
	Instance string `json:"instance"`

	storage certmagic.Storage
}

// Interface guards.
var (
	_ caddy.Provisioner      = (*Storage)(nil)
	_ caddy.StorageConverter = (*Storage)(nil)
)

// CaddyModule returns the Caddy module information.
func (*Storage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.storage.berth", New: func() caddy.Module { return new(Storage) }}
}

// Provision loads the Go storage value of the router instance.
func (s *Storage) Provision(ctx caddy.Context) error {
	st, err := loadTLSState(ctx, s.Instance)
	if err != nil {
		return fmt.Errorf("caddy.storage.berth: %w", err)
	}
	if st.storage == nil {
		return errors.New("caddy.storage.berth: the router was given no certificate storage")
	}
	s.storage = st.storage
	return nil
}

// CertMagicStorage implements caddy.StorageConverter.
func (s *Storage) CertMagicStorage() (certmagic.Storage, error) {
	if s.storage == nil {
		return nil, errors.New("caddy.storage.berth: not provisioned")
	}
	return s.storage, nil
}
