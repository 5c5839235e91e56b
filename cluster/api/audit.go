package api

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// AuditEntry records one mutating call.
type AuditEntry struct {
	Index  uint64    `json:"index"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`
	Role   string    `json:"role"`
	Action string    `json:"action"`
	App    string    `json:"app,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote"`
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	App   string
	Limit int
}

// Audit returns audit entries, newest first.
func (c *Client) Audit(ctx context.Context, f AuditQuery, q *QueryOptions) ([]AuditEntry, *QueryMeta, error) {
	v := url.Values{}
	if f.App != "" {
		v.Set("app", f.App)
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	var out []AuditEntry
	meta, err := c.get(ctx, "/v1/audit", q, v, &out)
	return out, meta, err
}
