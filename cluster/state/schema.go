package state

import (
	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableIndex     = "index"
	tableApps      = "apps"
	tableConfig    = "config"
	tableTokens    = "tokens"
	tableAudit     = "audit"
	tableServers   = "servers"
	tableMeta      = "meta"
	tableReleases  = "releases"
	tableKeys      = "keys"
	tableBuilds    = "builds"
	tableDeploys   = "deploys"
	tableDomains   = "domains"
	tableEndpoints = "endpoints"
	tableRouters   = "routers"
	tableCerts     = "certs"
	tableCertLocks = "cert_locks"
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
		tableReleases: {Name: tableReleases, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "App"}, &memdb.UintFieldIndex{Field: "Version"},
			}}},
			// Exact app match; within an app, entries are in version order.
			"app": {Name: "app", Indexer: &memdb.StringFieldIndex{Field: "App"}},
		}},
		tableKeys: {Name: tableKeys, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Fingerprint"}},
			"owner": {Name: "owner", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "Owner"}, &memdb.StringFieldIndex{Field: "Name"},
			}}},
		}},
		tableBuilds: {Name: tableBuilds, Indexes: map[string]*memdb.IndexSchema{
			"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"app": {Name: "app", Indexer: &memdb.StringFieldIndex{Field: "App"}},
		}},
		tableDeploys: {Name: tableDeploys, Indexes: map[string]*memdb.IndexSchema{
			"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
			"app": {Name: "app", Indexer: &memdb.StringFieldIndex{Field: "App"}},
		}},
		tableDomains: {Name: tableDomains, Indexes: map[string]*memdb.IndexSchema{
			"id":  {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			"app": {Name: "app", Indexer: &memdb.StringFieldIndex{Field: "App"}},
		}},
		tableEndpoints: {Name: tableEndpoints, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "App"}, &memdb.UintFieldIndex{Field: "Release"},
			}}},
			"app": {Name: "app", Indexer: &memdb.StringFieldIndex{Field: "App"}},
		}},
		tableRouters: {Name: tableRouters, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
		}},
		tableCerts: {Name: tableCerts, Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		}},
		tableCertLocks: {Name: tableCertLocks, Indexes: map[string]*memdb.IndexSchema{
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
