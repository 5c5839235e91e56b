package state

import (
	"fmt"
)

const (
	metaACLBootstrap = "acl-bootstrap"
	metaAuditCount   = "audit-count"
)

// Meta is a small keyed record of cluster-wide facts.
type Meta struct {
	Key   string
	Index uint64
	Value int
}

// ACLBootstrap marks the cluster as bootstrapped; it fails the second time.
func (t *Txn) ACLBootstrap() error {
	raw, err := t.txn.First(tableMeta, "id", metaACLBootstrap)
	if err != nil {
		return fmt.Errorf("read bootstrap state: %w", err)
	}
	if raw != nil {
		return ErrAlreadyBootstrapped
	}
	if err := t.txn.Insert(tableMeta, &Meta{Key: metaACLBootstrap, Index: t.index}); err != nil {
		return fmt.Errorf("record bootstrap: %w", err)
	}
	return t.bump(tableMeta)
}

// counter adds delta to a meta counter and returns the new value.
func (t *Txn) counter(key string, delta int) (int, error) {
	raw, err := t.txn.First(tableMeta, "id", key)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	m := &Meta{Key: key, Index: t.index}
	if raw != nil {
		m.Value = raw.(*Meta).Value
	}
	m.Value += delta
	if err := t.txn.Insert(tableMeta, m); err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return m.Value, nil
}

// ACLBootstrapped reports whether the root token was ever created.
func (s *Snapshot) ACLBootstrapped() bool {
	raw, err := s.txn.First(tableMeta, "id", metaACLBootstrap)
	return err == nil && raw != nil
}
