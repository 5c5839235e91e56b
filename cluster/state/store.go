package state

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Sentinel errors returned by writes; the HTTP layer maps them to statuses.
var (
	ErrNotFound            = errors.New("not found")
	ErrExists              = errors.New("already exists")
	ErrAlreadyBootstrapped = errors.New("already bootstrapped")
	ErrLastAdmin           = errors.New("last admin token")
	ErrLocked              = errors.New("locked by another owner")
)

// Store is the state store. It is safe for concurrent use; writes come only
// from the FSM, one at a time.
type Store struct {
	db *memdb.MemDB
	// abandon is closed when the store is replaced by a snapshot restore, so
	// blocking queries on the old store wake up and re-read.
	abandon chan struct{}
}

// New returns an empty store.
func New() (*Store, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("create state store: %w", err)
	}
	return &Store{db: db, abandon: make(chan struct{})}, nil
}

// AbandonCh is closed when this store has been replaced by a restore.
func (s *Store) AbandonCh() <-chan struct{} { return s.abandon }

// Abandon marks the store as replaced.
func (s *Store) Abandon() { close(s.abandon) }

// Snapshot is a point-in-time read view of the store.
type Snapshot struct {
	txn *memdb.Txn
}

// Snapshot returns a consistent read-only view in O(1).
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{txn: s.db.Txn(false)}
}

// Txn is a write transaction used by the FSM and by restores.
type Txn struct {
	txn   *memdb.Txn
	index uint64
}

// Write starts a write transaction for the raft log entry at index.
func (s *Store) Write(index uint64) *Txn {
	return &Txn{txn: s.db.Txn(true), index: index}
}

// Commit applies the transaction.
func (t *Txn) Commit() { t.txn.Commit() }

// Abort drops the transaction.
func (t *Txn) Abort() { t.txn.Abort() }

// bump records that table changed at the transaction's index.
func (t *Txn) bump(tables ...string) error {
	for _, table := range tables {
		if err := t.txn.Insert(tableIndex, &IndexEntry{Table: table, Value: t.index}); err != nil {
			return fmt.Errorf("update index of %s: %w", table, err)
		}
	}
	return nil
}

// maxIndex returns the highest index among tables, adding the index table to ws.
func maxIndex(txn *memdb.Txn, ws memdb.WatchSet, tables ...string) uint64 {
	var max uint64
	for _, table := range tables {
		ch, raw, err := txn.FirstWatch(tableIndex, "id", table)
		if err != nil {
			continue
		}
		ws.Add(ch)
		if raw != nil {
			if v := raw.(*IndexEntry).Value; v > max {
				max = v
			}
		}
	}
	return max
}

// Index returns the highest index among tables (0 if never written).
func (s *Snapshot) Index(tables ...string) uint64 {
	return maxIndex(s.txn, nil, tables...)
}

// LatestIndex is the highest index of any table.
func (s *Snapshot) LatestIndex() uint64 {
	it, err := s.txn.Get(tableIndex, "id")
	if err != nil {
		return 0
	}
	var max uint64
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if v := raw.(*IndexEntry).Value; v > max {
			max = v
		}
	}
	return max
}
