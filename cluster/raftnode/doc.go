// Package raftnode runs one hashicorp/raft member for a berth server: TCP
// transport, raft-boltdb log and stable store behind a log cache, file
// snapshots, and the FSM. It adds what raft leaves out: typed errors for "not
// the leader" and "no quorum", context-aware waits (WaitForLeader,
// WaitForAppliedIndex) so tests and callers wait on facts, and slog logging.
package raftnode
