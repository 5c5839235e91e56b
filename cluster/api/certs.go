package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CertEntry is one entry of the routers' shared certificate storage.
type CertEntry struct {
	Key      string    `json:"key"`
	Value    []byte    `json:"value,omitempty"`
	Size     int       `json:"size"`
	Modified time.Time `json:"modified"`
}

// CertPutRequest is the body of PUT /v1/certs/{key...}.
type CertPutRequest struct {
	Value []byte `json:"value"`
}

// CertLockRequest is the body of POST /v1/cert-locks/{name}: take the lock
// for Owner for TTL (a Go duration), or renew it if Owner holds it. A lock
// held by another owner answers 409.
type CertLockRequest struct {
	Owner string `json:"owner"`
	TTL   string `json:"ttl"`
}

// MaxCertValue bounds one certificate-storage value.
const MaxCertValue = 256 << 10

func certPath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return "/v1/certs/" + strings.Join(parts, "/")
}

// CertGet reads one entry with its value.
func (c *Client) CertGet(ctx context.Context, key string) (*CertEntry, error) {
	var out CertEntry
	if _, err := c.get(ctx, certPath(key), &QueryOptions{Stale: true}, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CertPut stores value under key.
func (c *Client) CertPut(ctx context.Context, key string, value []byte) error {
	return c.write(ctx, http.MethodPut, certPath(key), CertPutRequest{Value: value}, nil)
}

// CertDelete deletes key and every key under key/.
func (c *Client) CertDelete(ctx context.Context, key string) error {
	return c.write(ctx, http.MethodDelete, certPath(key), nil, nil)
}

// CertList lists the entries under prefix (without values).
func (c *Client) CertList(ctx context.Context, prefix string) ([]CertEntry, error) {
	var out []CertEntry
	_, err := c.get(ctx, "/v1/certs", &QueryOptions{Stale: true}, url.Values{"prefix": {prefix}}, &out)
	return out, err
}

// CertLock takes or renews a storage lock; another owner's live lock is a
// conflict error (IsCode(err, CodeConflict)).
func (c *Client) CertLock(ctx context.Context, name, owner string, ttl time.Duration) error {
	return c.write(ctx, http.MethodPost, "/v1/cert-locks/"+esc(name), CertLockRequest{Owner: owner, TTL: ttl.String()}, nil)
}

// CertUnlock frees a lock the owner holds.
func (c *Client) CertUnlock(ctx context.Context, name, owner string) error {
	return c.write(ctx, http.MethodDelete, "/v1/cert-locks/"+esc(name)+"?owner="+url.QueryEscape(owner), nil, nil)
}
