package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// AuditRetain is how many audit entries the store keeps; older ones are
// dropped in index order, which keeps the FSM deterministic.
const AuditRetain = 10000

// AuditEntry records one mutating call: who, what, when, from where.
type AuditEntry struct {
	Index  uint64
	Time   time.Time
	Actor  string
	Role   string
	Action string
	App    string
	Detail string
	Remote string
}

// AddAudit appends an entry at the transaction's index and trims the log.
func (t *Txn) AddAudit(e AuditEntry) error {
	e.Index = t.index
	if err := t.txn.Insert(tableAudit, &e); err != nil {
		return fmt.Errorf("insert audit entry: %w", err)
	}
	n, err := t.counter(metaAuditCount, 1)
	if err != nil {
		return err
	}
	if n > AuditRetain {
		// Entries are added one at a time, so dropping the oldest keeps the
		// log at AuditRetain entries.
		oldest, err := t.txn.First(tableAudit, "id")
		if err != nil {
			return fmt.Errorf("trim audit log: %w", err)
		}
		if err := t.txn.Delete(tableAudit, oldest); err != nil {
			return fmt.Errorf("trim audit log: %w", err)
		}
		if _, err := t.counter(metaAuditCount, -1); err != nil {
			return err
		}
	}
	return t.bump(tableAudit)
}

// Audit returns up to limit entries, newest first, optionally for one app
// (keep reports whether the caller may see an entry).
func (s *Snapshot) Audit(ws memdb.WatchSet, app string, limit int, keep func(*AuditEntry) bool) ([]*AuditEntry, uint64, error) {
	idx := maxIndex(s.txn, ws, tableAudit)
	it, err := s.txn.GetReverse(tableAudit, "id")
	if err != nil {
		return nil, 0, fmt.Errorf("list audit: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*AuditEntry
	for raw := it.Next(); raw != nil && (limit <= 0 || len(out) < limit); raw = it.Next() {
		e := raw.(*AuditEntry)
		if (app == "" || e.App == app) && (keep == nil || keep(e)) {
			out = append(out, e)
		}
	}
	return out, idx, nil
}
