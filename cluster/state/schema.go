package state

import (
	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableIndex   = "index"
	tableApps    = "apps"
	tableConfig  = "config"
	tableTokens  = "tokens"
	tableAudit   = "audit"
	tableServers = "servers"
	tableMeta    = "meta"
)

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableIndex: {Name: tableIndex, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Table"}},
		}},
		tableApps: {Name: tableApps, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
		tableConfig: {Name: tableConfig, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "App"}},
		}},
		tableTokens: {Name: tableTokens, Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "AccessorID"}},
			"secret": {Name: "secret", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "SecretHash"}},
			"name":   {Name: "name", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
		tableAudit: {Name: tableAudit, Indexes: map[string]*memdb.IndexSchema{
			"id":  {Name: "id", Unique: true, Indexer: &memdb.UintFieldIndex{Field: "Index"}},
			"app": {Name: "app", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "App"}},
		}},
		tableServers: {Name: tableServers, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
		}},
		tableMeta: {Name: tableMeta, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
	}}
}

// IndexEntry records the last raft index that changed a table.
type IndexEntry struct {
	Table string
	Value uint64
}
