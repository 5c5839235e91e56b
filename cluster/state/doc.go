// Package state is berth's in-memory MVCC state store, built on go-memdb.
//
// The FSM is its only writer: every write method takes the raft index of the
// command that caused it, and records that index per table so that readers
// can run blocking queries (wait until a table's index passes N). Readers get
// consistent snapshots for free from memdb's immutable radix trees.
package state
