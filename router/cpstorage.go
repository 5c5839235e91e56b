package router

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/caddyserver/certmagic"
)

// ControlPlaneStorage is certmagic storage kept in the control plane
// (/v1/certs and /v1/cert-locks): every router of a cluster shares the
// certificates, ACME accounts and challenge tokens, and its locks, so a
// certificate is ordered once however many routers ask for it. Values are
// sealed with the cluster keyring on the servers; the API needs a token
// allowed to route traffic.
type ControlPlaneStorage struct {
	Servers *Servers
	// Owner names this router's locks; unique per router process.
	Owner string
	// LockTTL is how long a lock outlives a router that died holding it
	// (default 2 minutes); held locks are renewed every LockTTL/3.
	LockTTL time.Duration
	// LockPoll is how often a blocked Lock tries again (default 1 s).
	LockPoll time.Duration

	mu      sync.Mutex
	renewal map[string]context.CancelFunc
}

var (
	_ certmagic.Storage          = (*ControlPlaneStorage)(nil)
	_ certmagic.TryLocker        = (*ControlPlaneStorage)(nil)
	_ certmagic.LockLeaseRenewer = (*ControlPlaneStorage)(nil)
)

// do runs f against the control plane.
func (s *ControlPlaneStorage) do(ctx context.Context, f func(*api.Client) error) error {
	return s.Servers.Do(ctx, f)
}

func (s *ControlPlaneStorage) ttl() time.Duration {
	if s.LockTTL > 0 {
		return s.LockTTL
	}
	return 2 * time.Minute
}

// Store implements certmagic.Storage.
func (s *ControlPlaneStorage) Store(ctx context.Context, key string, value []byte) error {
	return s.do(ctx, func(c *api.Client) error { return c.CertPut(ctx, key, value) })
}

// Load implements certmagic.Storage; a missing key is fs.ErrNotExist.
func (s *ControlPlaneStorage) Load(ctx context.Context, key string) ([]byte, error) {
	e, err := s.get(ctx, key)
	if api.IsCode(err, api.CodeNotFound) {
		return nil, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	return e.Value, nil
}

// Delete implements certmagic.Storage: key and everything under it; a
// missing key is not an error.
func (s *ControlPlaneStorage) Delete(ctx context.Context, key string) error {
	err := s.do(ctx, func(c *api.Client) error { return c.CertDelete(ctx, key) })
	if api.IsCode(err, api.CodeNotFound) {
		return nil
	}
	return err
}

// Exists implements certmagic.Storage: a key or a directory of keys.
func (s *ControlPlaneStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List implements certmagic.Storage: the keys under path (recursive), or
// its direct children, files and directories (not recursive).
func (s *ControlPlaneStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	prefix := strings.TrimSuffix(path, "/") + "/"
	if path == "" {
		prefix = ""
	}
	entries, err := s.list(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range entries {
		k := e.Key
		if !recursive {
			rest := strings.TrimPrefix(k, prefix)
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				k = prefix + rest[:i]
			}
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	return out, nil
}

// Stat implements certmagic.Storage.
func (s *ControlPlaneStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	e, err := s.get(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: e.Modified, Size: int64(e.Size), IsTerminal: true}, nil
	}
	if !api.IsCode(err, api.CodeNotFound) {
		return certmagic.KeyInfo{}, err
	}
	entries, err := s.list(ctx, strings.TrimSuffix(key, "/")+"/")
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(entries) == 0 {
		return certmagic.KeyInfo{}, fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// TryLock implements certmagic.TryLocker.
func (s *ControlPlaneStorage) TryLock(ctx context.Context, name string) (bool, error) {
	err := s.lock(ctx, name, s.ttl())
	if api.IsCode(err, api.CodeConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.keepRenewed(name)
	return true, nil
}

// Lock implements certmagic.Locker: it blocks until the lock is free (or
// the holder's lease expired) or ctx ends.
func (s *ControlPlaneStorage) Lock(ctx context.Context, name string) error {
	poll := s.LockPoll
	if poll == 0 {
		poll = time.Second
	}
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock %s: %w", name, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Unlock implements certmagic.Locker.
func (s *ControlPlaneStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	if stop := s.renewal[name]; stop != nil {
		stop()
		delete(s.renewal, name)
	}
	s.mu.Unlock()
	return s.do(ctx, func(c *api.Client) error { return c.CertUnlock(ctx, name, s.Owner) })
}

// RenewLockLease implements certmagic.LockLeaseRenewer.
func (s *ControlPlaneStorage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	err := s.lock(ctx, name, max(lease, time.Second))
	if api.IsCode(err, api.CodeConflict) {
		return errors.Join(fmt.Errorf("lock %s was taken over by another router", name), err)
	}
	return err
}

// keepRenewed renews a held lock every TTL/3 until Unlock.
func (s *ControlPlaneStorage) keepRenewed(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.renewal == nil {
		s.renewal = map[string]context.CancelFunc{}
	}
	if s.renewal[name] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.renewal[name] = cancel
	go func() {
		t := time.NewTicker(s.ttl() / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				rctx, c := context.WithTimeout(ctx, 10*time.Second)
				_ = s.lock(rctx, name, s.ttl())
				c()
			}
		}
	}()
}

func (s *ControlPlaneStorage) get(ctx context.Context, key string) (*api.CertEntry, error) {
	var e *api.CertEntry
	err := s.do(ctx, func(c *api.Client) error {
		var err error
		e, err = c.CertGet(ctx, key)
		return err
	})
	return e, err
}

func (s *ControlPlaneStorage) list(ctx context.Context, prefix string) ([]api.CertEntry, error) {
	var out []api.CertEntry
	err := s.do(ctx, func(c *api.Client) error {
		var err error
		out, err = c.CertList(ctx, prefix)
		return err
	})
	return out, err
}

func (s *ControlPlaneStorage) lock(ctx context.Context, name string, ttl time.Duration) error {
	return s.do(ctx, func(c *api.Client) error { return c.CertLock(ctx, name, s.Owner, ttl) })
}
