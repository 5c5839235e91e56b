package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Headers used by the API.
const (
	// HeaderIndex carries the state index a read reflects; pass it back as
	// QueryOptions.WaitIndex to block until something changes.
	HeaderIndex = "X-Berth-Index"
	// HeaderKnownLeader says whether the answering server knew a leader.
	HeaderKnownLeader = "X-Berth-Known-Leader"
	// HeaderLastContact is the answering server's time since it last heard
	// from the leader, in milliseconds (0 on the leader).
	HeaderLastContact = "X-Berth-Last-Contact"
)

// DefaultAddr is the API address a client uses when none is configured.
const DefaultAddr = "http://127.0.0.1:4880"

// Client talks to one berth server. Any server will do: writes and
// consistent reads are forwarded to the leader.
type Client struct {
	addr  string
	token string
	http  *http.Client
}

// NewClient returns a client for the server at addr ("host:port" or a URL)
// that authenticates with token. hc may be nil.
func NewClient(addr, token string, hc *http.Client) *Client {
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{addr: strings.TrimRight(addr, "/"), token: token, http: hc}
}

// Addr is the base URL of the server this client talks to.
func (c *Client) Addr() string { return c.addr }

// WithToken returns a copy of the client that uses another token.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.token = token
	return &cc
}

// QueryOptions tune a read.
type QueryOptions struct {
	// Stale lets any server answer from its local state, without the leader.
	Stale bool
	// WaitIndex makes the read block until the state index exceeds it.
	WaitIndex uint64
	// WaitTime bounds a blocking read (the server caps it at 5 minutes).
	WaitTime time.Duration
}

// QueryMeta describes the state a read came from.
type QueryMeta struct {
	LastIndex   uint64
	KnownLeader bool
	LastContact time.Duration
}

func (q *QueryOptions) values(v url.Values) url.Values {
	if v == nil {
		v = url.Values{}
	}
	if q == nil {
		return v
	}
	if q.Stale {
		v.Set("stale", "")
	}
	if q.WaitIndex > 0 {
		v.Set("index", strconv.FormatUint(q.WaitIndex, 10))
	}
	if q.WaitTime > 0 {
		v.Set("wait", q.WaitTime.String())
	}
	return v
}

// get decodes a GET into out and returns the response metadata.
func (c *Client) get(ctx context.Context, path string, q *QueryOptions, v url.Values, out any) (*QueryMeta, error) {
	v = q.values(v)
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, out)
	if err != nil {
		return nil, err
	}
	return parseMeta(resp.Header), nil
}

func parseMeta(h http.Header) *QueryMeta {
	m := &QueryMeta{}
	m.LastIndex, _ = strconv.ParseUint(h.Get(HeaderIndex), 10, 64)
	m.KnownLeader = h.Get(HeaderKnownLeader) == "true"
	if ms, err := strconv.ParseInt(h.Get(HeaderLastContact), 10, 64); err == nil {
		m.LastContact = time.Duration(ms) * time.Millisecond
	}
	return m
}

// write sends a JSON body with method and decodes the response into out.
func (c *Client) write(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	_, err := c.do(ctx, method, path, body, out)
	return err
}

// Do sends a raw request and decodes a JSON answer into out (if non-nil).
// It is exported for tools that exercise the API beyond the typed helpers.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, out any) (*http.Response, error) {
	return c.do(ctx, method, path, body, out)
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.addr+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("berth server at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return resp, decodeError(resp)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("decode %s %s response: %w", method, path, err)
		}
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb ErrorBody
	if err := json.Unmarshal(b, &eb); err == nil && eb.Error != nil {
		eb.Error.Status = resp.StatusCode
		return eb.Error
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = resp.Status
	}
	return &Error{Status: resp.StatusCode, Code: CodeInternal, Message: msg}
}

func esc(s string) string { return url.PathEscape(s) }
