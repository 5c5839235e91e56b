// Package e2e holds black-box tests of berth: real server processes, real
// raft over TCP on loopback, the real CLI and git. They reach berth only
// through cluster/api, the CLI binary and the harness.
package e2e
