package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// persistedTables is the order tables are written in a snapshot. New tables
// are appended; a restore ignores nothing and rejects unknown tables.
var persistedTables = []string{tableIndex, tableMeta, tableServers, tableApps, tableConfig, tableTokens, tableAudit,
	tableReleases, tableKeys, tableBuilds, tableDeploys, tableDomains, tableEndpoints, tableRouters, tableCerts, tableCertLocks}

// record is one line of a persisted snapshot.
type record struct {
	Table string          `json:"t"`
	Value json.RawMessage `json:"v"`
}

// Persist writes every object of the snapshot to w, one JSON record a line.
func (s *Snapshot) Persist(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, table := range persistedTables {
		it, err := s.txn.Get(table, "id")
		if err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			v, err := json.Marshal(raw)
			if err != nil {
				return fmt.Errorf("encode %s: %w", table, err)
			}
			if err := enc.Encode(record{Table: table, Value: v}); err != nil {
				return fmt.Errorf("write %s: %w", table, err)
			}
		}
	}
	return bw.Flush()
}

// Restore reads a persisted snapshot into a new store.
func Restore(r io.Reader) (*Store, error) {
	s, err := New()
	if err != nil {
		return nil, err
	}
	txn := s.db.Txn(true)
	defer txn.Abort()
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var rec record
		if err := dec.Decode(&rec); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode snapshot record: %w", err)
		}
		obj, err := newObject(rec.Table)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(rec.Value, obj); err != nil {
			return nil, fmt.Errorf("decode %s record: %w", rec.Table, err)
		}
		if err := txn.Insert(rec.Table, obj); err != nil {
			return nil, fmt.Errorf("restore %s record: %w", rec.Table, err)
		}
	}
	txn.Commit()
	return s, nil
}

func newObject(table string) (any, error) {
	switch table {
	case tableIndex:
		return &IndexEntry{}, nil
	case tableMeta:
		return &Meta{}, nil
	case tableServers:
		return &Server{}, nil
	case tableApps:
		return &App{}, nil
	case tableConfig:
		return &Config{}, nil
	case tableTokens:
		return &Token{}, nil
	case tableAudit:
		return &AuditEntry{}, nil
	case tableReleases:
		return &Release{}, nil
	case tableKeys:
		return &Key{}, nil
	case tableBuilds:
		return &Build{}, nil
	case tableDeploys:
		return &Deploy{}, nil
	case tableDomains:
		return &Domain{}, nil
	case tableEndpoints:
		return &Endpoints{}, nil
	case tableRouters:
		return &Router{}, nil
	case tableCerts:
		return &Cert{}, nil
	case tableCertLocks:
		return &CertLock{}, nil
	}
	return nil, fmt.Errorf("snapshot has unknown table %q", table)
}
