// Package api holds berth's public HTTP API: the wire types and a Go client.
//
// It imports only the standard library so that anything (the CLI, routers,
// agents, the e2e harness, third-party tools) can depend on it without pulling
// in the control plane. A test enforces that rule.
package api
