package api

import (
	"context"
	"net/http"
	"time"
)

// App is a deployable application.
type App struct {
	Name        string    `json:"name"`
	CreatedAt   time.Time `json:"created_at"`
	CreateIndex uint64    `json:"create_index"`
	ModifyIndex uint64    `json:"modify_index"`
}

// AppCreateRequest is the body of POST /v1/apps.
type AppCreateRequest struct {
	Name string `json:"name"`
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
	var out App
	if err := c.write(ctx, http.MethodPost, "/v1/apps", AppCreateRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DestroyApp deletes an app and its config.
func (c *Client) DestroyApp(ctx context.Context, name string) error {
	return c.write(ctx, http.MethodDelete, "/v1/apps/"+esc(name), nil, nil)
}
