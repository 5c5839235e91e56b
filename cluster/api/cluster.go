package api

import (
	"context"
	"net/http"
)

// Member is one server of the control plane.
type Member struct {
	Name        string `json:"name"`
	RaftAddr    string `json:"raft_addr"`
	APIAddr     string `json:"api_addr,omitempty"`
	Suffrage    string `json:"suffrage"`
	Leader      bool   `json:"leader"`
	State       string `json:"state"`
	Term        uint64 `json:"term,omitempty"`
	CommitIndex uint64 `json:"commit_index,omitempty"`
	AppliedIdx  uint64 `json:"applied_index,omitempty"`
	// LastContact is the member's own time since it heard from the leader,
	// as a Go duration string; "0" on the leader.
	LastContact string `json:"last_contact,omitempty"`
	Error       string `json:"error,omitempty"`
}

// ClusterStatus is the answer of GET /v1/cluster/status.
type ClusterStatus struct {
	Leader  string   `json:"leader"`
	Term    uint64   `json:"term"`
	Members []Member `json:"members"`
}

// Self is what a server says about itself (GET /v1/cluster/self). It needs
// no token, so that servers can find each other before any token exists.
type Self struct {
	Name              string `json:"name"`
	APIAddr           string `json:"api_addr"`
	RaftAddr          string `json:"raft_addr"`
	State             string `json:"state"`
	Leader            string `json:"leader"`
	Term              uint64 `json:"term"`
	CommitIndex       uint64 `json:"commit_index"`
	AppliedIndex      uint64 `json:"applied_index"`
	LastSnapshotIndex uint64 `json:"last_snapshot_index"`
	LastContact       string `json:"last_contact"`
	HasState          bool   `json:"has_state"`
	HasKeyring        bool   `json:"has_keyring"`
	BootstrapExpect   int    `json:"bootstrap_expect,omitempty"`
	Version           string `json:"version"`
}

// JoinRequest is sent by a server that wants to join a cluster.
type JoinRequest struct {
	Name     string `json:"name"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// JoinResponse hands the joining server the cluster keyring.
type JoinResponse struct {
	Keyring []byte `json:"keyring"`
}

// BootstrapResponse carries the root token created by ACL bootstrap.
type BootstrapResponse struct {
	Token Token `json:"token"`
}

// ClusterSelf describes the server this client talks to.
func (c *Client) ClusterSelf(ctx context.Context) (*Self, error) {
	var out Self
	if _, err := c.get(ctx, "/v1/cluster/self", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClusterStatus reports leadership and every member's raft state.
func (c *Client) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	var out ClusterStatus
	if _, err := c.get(ctx, "/v1/cluster/status", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClusterBootstrap creates the root token; it succeeds once per cluster.
func (c *Client) ClusterBootstrap(ctx context.Context) (*Token, error) {
	var out BootstrapResponse
	if err := c.write(ctx, http.MethodPost, "/v1/cluster/bootstrap", nil, &out); err != nil {
		return nil, err
	}
	return &out.Token, nil
}

// ClusterJoin asks the cluster to add a server.
func (c *Client) ClusterJoin(ctx context.Context, req JoinRequest) (*JoinResponse, error) {
	var out JoinResponse
	if err := c.write(ctx, http.MethodPost, "/v1/cluster/members", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClusterRemove removes a server from the cluster by name.
func (c *Client) ClusterRemove(ctx context.Context, name string) error {
	return c.write(ctx, http.MethodDelete, "/v1/cluster/members/"+esc(name), nil, nil)
}

// ClusterSnapshot makes the server this client talks to take a raft
// snapshot now (compacting its log).
func (c *Client) ClusterSnapshot(ctx context.Context) error {
	return c.write(ctx, http.MethodPost, "/v1/cluster/snapshot", nil, nil)
}
