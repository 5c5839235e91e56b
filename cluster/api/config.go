package api

import (
	"context"
	"net/http"
)

// Config is an app's config vars. Values is nil, and Redacted true, when the
// token may list keys but not read secret values.
type Config struct {
	App         string            `json:"app"`
	Values      map[string]string `json:"values,omitempty"`
	Keys        []string          `json:"keys"`
	Redacted    bool              `json:"redacted,omitempty"`
	ModifyIndex uint64            `json:"modify_index"`
}

// ConfigUpdateRequest is the body of PATCH /v1/apps/{app}/config: every
// key of Set is written and every key of Unset removed, in one atomic step.
type ConfigUpdateRequest struct {
	Set   map[string]string `json:"set,omitempty"`
	Unset []string          `json:"unset,omitempty"`
}

// Config returns an app's config vars.
func (c *Client) Config(ctx context.Context, app string, q *QueryOptions) (*Config, *QueryMeta, error) {
	var out Config
	meta, err := c.get(ctx, "/v1/apps/"+esc(app)+"/config", q, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// UpdateConfig sets and unsets config vars atomically and returns the result.
func (c *Client) UpdateConfig(ctx context.Context, app string, req ConfigUpdateRequest) (*Config, error) {
	var out Config
	if err := c.write(ctx, http.MethodPatch, "/v1/apps/"+esc(app)+"/config", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
