package api

import (
	"context"
	"net/http"
	"time"
)

// App is a deployable application.
type App struct {
	Name string `json:"name"`
	// DeployBranch is the branch whose pushes deploy ("" = main or master).
	DeployBranch  string `json:"deploy_branch,omitempty"`
	LatestRelease uint64 `json:"latest_release"`
	// ActiveRelease serves traffic; it changes when a deploy cuts over.
	ActiveRelease uint64         `json:"active_release"`
	Formation     map[string]int `json:"formation,omitempty"`
	DeployTimeout string         `json:"deploy_timeout,omitempty"`
	// ForceHTTPS redirects plain-HTTP requests to https; HSTS adds
	// Strict-Transport-Security to https answers.
	ForceHTTPS bool `json:"force_https,omitempty"`
	HSTS       bool `json:"hsts,omitempty"`
	// LB is the routers' load-balancing policy: round_robin or least_conn.
	LB string `json:"lb,omitempty"`
	// WebURL is where the app answers (APP.<apps domain>), if the server
	// has an apps domain.
	WebURL string `json:"web_url,omitempty"`
	// GitRemote is where to push, as the answering server sees it.
	GitRemote   string    `json:"git_remote,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// AppCreateRequest is the body of POST /v1/apps.
type AppCreateRequest struct {
	Name         string `json:"name"`
	DeployBranch string `json:"deploy_branch,omitempty"`
}

// AppUpdateRequest is the body of PATCH /v1/apps/{app}; nil fields stay.
type AppUpdateRequest struct {
	// DeployBranch: "" restores the default (main or master).
	DeployBranch *string `json:"deploy_branch,omitempty"`
	// DeployTimeout bounds how long new instances have to become healthy,
	// as a Go duration ("90s"); "" restores the default (60s).
	DeployTimeout *string `json:"deploy_timeout,omitempty"`
	ForceHTTPS    *bool   `json:"force_https,omitempty"`
	HSTS          *bool   `json:"hsts,omitempty"`
	// LB: "round_robin" (the default) or "least_conn".
	LB *string `json:"lb,omitempty"`
}

// Apps lists the apps the token may see.
func (c *Client) Apps(ctx context.Context, q *QueryOptions) ([]App, *QueryMeta, error) {
	var out []App
	meta, err := c.get(ctx, "/v1/apps", q, nil, &out)
	return out, meta, err
}

// App returns one app.
func (c *Client) App(ctx context.Context, name string, q *QueryOptions) (*App, *QueryMeta, error) {
	var out App
	meta, err := c.get(ctx, "/v1/apps/"+esc(name), q, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// CreateApp creates an app.
func (c *Client) CreateApp(ctx context.Context, name string) (*App, error) {
	return c.CreateAppWith(ctx, AppCreateRequest{Name: name})
}

// CreateAppWith creates an app with settings.
func (c *Client) CreateAppWith(ctx context.Context, req AppCreateRequest) (*App, error) {
	var out App
	if err := c.write(ctx, http.MethodPost, "/v1/apps", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateApp changes an app's settings.
func (c *Client) UpdateApp(ctx context.Context, name string, req AppUpdateRequest) (*App, error) {
	var out App
	if err := c.write(ctx, http.MethodPatch, "/v1/apps/"+esc(name), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DestroyApp deletes an app and its config.
func (c *Client) DestroyApp(ctx context.Context, name string) error {
	return c.write(ctx, http.MethodDelete, "/v1/apps/"+esc(name), nil, nil)
}
