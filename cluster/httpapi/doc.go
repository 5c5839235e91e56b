// Package httpapi serves berth's /v1 HTTP API on every server.
//
// Each route is marked as a write, a read or local. Writes and non-stale
// reads are forwarded to the raft leader when this server is not it; stale
// reads and local routes are answered here. Reads support blocking queries
// over the memdb state store. Every error is {"error":{"code","message"}}.
package httpapi
