package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Release is an immutable, numbered version of an app.
type Release struct {
	App     string `json:"app"`
	Version uint64 `json:"version"`
	Image   string `json:"image"`
	Digest  string `json:"digest"`
	Kind    string `json:"kind"`
	// Description says why the release exists ("Deploy 3f2a9c1", "Set X config vars").
	Description    string            `json:"description"`
	Commit         string            `json:"commit,omitempty"`
	Processes      map[string]string `json:"processes,omitempty"`
	ReleaseCommand string            `json:"release_command,omitempty"`
	ConfigKeys     []string          `json:"config_keys"`
	// Config holds values only for tokens that may read them.
	Config    map[string]string `json:"config,omitempty"`
	CreatedBy string            `json:"created_by"`
	CreatedAt time.Time         `json:"created_at"`
}

// RollbackRequest is the body of POST /v1/apps/{app}/rollback.
type RollbackRequest struct {
	// Version to roll back to; 0 means the release before the latest.
	Version uint64 `json:"version,omitempty"`
}

// ImageDeployRequest is the body of POST /v1/apps/{app}/releases: import an
// image from the server's Docker engine as a release.
type ImageDeployRequest struct {
	Image       string `json:"image"`
	Description string `json:"description,omitempty"`
}

// ParseVersion accepts "v12" or "12".
func ParseVersion(s string) (uint64, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "v"), 10, 64)
	if err != nil || v == 0 {
		return 0, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("invalid release version %q: use v12 or 12", clip(s))}
	}
	return v, nil
}

// Releases lists an app's releases, newest first.
func (c *Client) Releases(ctx context.Context, app string, q *QueryOptions) ([]Release, *QueryMeta, error) {
	var out []Release
	meta, err := c.get(ctx, "/v1/apps/"+esc(app)+"/releases", q, nil, &out)
	return out, meta, err
}

// Release returns one release.
func (c *Client) Release(ctx context.Context, app string, version uint64, q *QueryOptions) (*Release, *QueryMeta, error) {
	var out Release
	meta, err := c.get(ctx, fmt.Sprintf("/v1/apps/%s/releases/%d", esc(app), version), q, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Rollback makes a new release from an older one's image and config.
func (c *Client) Rollback(ctx context.Context, app string, version uint64) (*Release, error) {
	var out Release
	if err := c.write(ctx, http.MethodPost, "/v1/apps/"+esc(app)+"/rollback", RollbackRequest{Version: version}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeployImage imports an image from the server's Docker engine as a release.
func (c *Client) DeployImage(ctx context.Context, app string, req ImageDeployRequest) (*Release, error) {
	var out Release
	if err := c.write(ctx, http.MethodPost, "/v1/apps/"+esc(app)+"/releases", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
