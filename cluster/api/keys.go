package api

import (
	"context"
	"net/http"
	"time"
)

// Key is an SSH public key that acts with its owner token's rights on git pushes.
type Key struct {
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	Owner       string    `json:"owner"`
	PublicKey   string    `json:"public_key"`
	CreatedAt   time.Time `json:"created_at"`
}

// KeyAddRequest is the body of POST /v1/keys.
type KeyAddRequest struct {
	Name      string `json:"name"`
	PublicKey string `json:"public_key"`
}

// Keys lists the calling token's keys (an admin sees everyone's).
func (c *Client) Keys(ctx context.Context, q *QueryOptions) ([]Key, *QueryMeta, error) {
	var out []Key
	meta, err := c.get(ctx, "/v1/keys", q, nil, &out)
	return out, meta, err
}

// AddKey attaches a public key (authorized_keys form) to the calling token.
func (c *Client) AddKey(ctx context.Context, req KeyAddRequest) (*Key, error) {
	var out Key
	if err := c.write(ctx, http.MethodPost, "/v1/keys", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveKey removes one of the calling token's keys by name.
func (c *Client) RemoveKey(ctx context.Context, name string) error {
	return c.write(ctx, http.MethodDelete, "/v1/keys/"+esc(name), nil, nil)
}
