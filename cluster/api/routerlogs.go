package api

import (
	"context"
	"net/http"
	"time"
)

// RouterLogLine is one request a router served, as `berth logs` shows it
// (process "router").
type RouterLogLine struct {
	App  string    `json:"app"`
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// RouterLogsRequest is the body of POST /v1/router-logs. Routers send
// their access logs in batches; the leader keeps the last lines of each
// app in memory for `berth logs` (they are not replicated: a new leader
// starts empty).
type RouterLogsRequest struct {
	Router string          `json:"router"`
	Lines  []RouterLogLine `json:"lines"`
}

// MaxRouterLogBatch bounds the lines of one RouterLogsRequest.
const MaxRouterLogBatch = 2000

// ShipRouterLogs sends a batch of access-log lines.
func (c *Client) ShipRouterLogs(ctx context.Context, req RouterLogsRequest) error {
	return c.write(ctx, http.MethodPost, "/v1/router-logs", req, nil)
}
