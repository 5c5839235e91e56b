package api

import (
	"context"
	"net/http"
	"time"
)

// Token roles.
const (
	RoleAdmin    = "admin"
	RoleDeployer = "deployer"
	RoleViewer   = "viewer"
	// RoleRouter is for routers: read the route table, report what they
	// serve, share certificates. Nothing else.
	RoleRouter = "router"
)

// AllApps in a token's Apps grants the role on every app.
const AllApps = "*"

// Token describes an API token. Secret is only ever set in the answer that
// created it; the server stores a hash.
type Token struct {
	AccessorID string    `json:"accessor_id"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	Apps       []string  `json:"apps,omitempty"`
	Secret     string    `json:"secret,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by,omitempty"`
}

// TokenCreateRequest is the body of POST /v1/tokens.
type TokenCreateRequest struct {
	Name string   `json:"name"`
	Role string   `json:"role"`
	Apps []string `json:"apps,omitempty"`
}

// Tokens lists tokens (admin only); secrets are never included.
func (c *Client) Tokens(ctx context.Context, q *QueryOptions) ([]Token, *QueryMeta, error) {
	var out []Token
	meta, err := c.get(ctx, "/v1/tokens", q, nil, &out)
	return out, meta, err
}

// TokenSelf describes the calling token.
func (c *Client) TokenSelf(ctx context.Context) (*Token, error) {
	var out Token
	if _, err := c.get(ctx, "/v1/tokens/self", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateToken creates a token and returns it with its secret.
func (c *Client) CreateToken(ctx context.Context, req TokenCreateRequest) (*Token, error) {
	var out Token
	if err := c.write(ctx, http.MethodPost, "/v1/tokens", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeToken deletes a token by accessor ID or by name.
func (c *Client) RevokeToken(ctx context.Context, idOrName string) error {
	return c.write(ctx, http.MethodDelete, "/v1/tokens/"+esc(idOrName), nil, nil)
}
