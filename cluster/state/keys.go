package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Key is an SSH public key attached to a token's identity; pushes signed by
// it act with that token's rights.
type Key struct {
	Fingerprint string // SHA256:...
	Name        string
	Owner       string // token accessor ID
	OwnerName   string
	PublicKey   string // authorized_keys form
	CreatedAt   time.Time
}

// AddKey stores a key; a fingerprint belongs to one owner, and names are
// unique per owner.
func (t *Txn) AddKey(k Key) error {
	if raw, err := t.txn.First(tableKeys, "id", k.Fingerprint); err != nil {
		return fmt.Errorf("look up key: %w", err)
	} else if raw != nil {
		return fmt.Errorf("key %s is already registered (as %q): %w", k.Fingerprint, raw.(*Key).Name, ErrExists)
	}
	if raw, err := t.txn.First(tableKeys, "owner", k.Owner, k.Name); err != nil {
		return fmt.Errorf("look up key: %w", err)
	} else if raw != nil {
		return fmt.Errorf("you already have a key named %q: %w", k.Name, ErrExists)
	}
	if err := t.txn.Insert(tableKeys, &k); err != nil {
		return fmt.Errorf("insert key: %w", err)
	}
	return t.bump(tableKeys)
}

// RemoveKey deletes the owner's key by name.
func (t *Txn) RemoveKey(owner, name string) error {
	raw, err := t.txn.First(tableKeys, "owner", owner, name)
	if err != nil {
		return fmt.Errorf("look up key: %w", err)
	}
	if raw == nil {
		return fmt.Errorf("key %q: %w", name, ErrNotFound)
	}
	if err := t.txn.Delete(tableKeys, raw); err != nil {
		return fmt.Errorf("delete key: %w", err)
	}
	return t.bump(tableKeys)
}

// Keys lists keys, of one owner or (owner "") of everyone.
func (s *Snapshot) Keys(ws memdb.WatchSet, owner string) ([]*Key, uint64, error) {
	idx := maxIndex(s.txn, ws, tableKeys)
	it, err := s.txn.Get(tableKeys, "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list keys: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Key
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if k := raw.(*Key); owner == "" || k.Owner == owner {
			out = append(out, k)
		}
	}
	return out, idx, nil
}

// KeyByFingerprint finds a key, or ErrNotFound.
func (s *Snapshot) KeyByFingerprint(fp string) (*Key, error) {
	raw, err := s.txn.First(tableKeys, "id", fp)
	if err != nil {
		return nil, fmt.Errorf("look up key: %w", err)
	}
	if raw == nil {
		return nil, ErrNotFound
	}
	return raw.(*Key), nil
}
