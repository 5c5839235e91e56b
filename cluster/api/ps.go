package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Instance is one running (or starting, or dead) copy of a process.
type Instance struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"` // web.1
	Process   string    `json:"process"`
	Release   uint64    `json:"release"`
	Node      string    `json:"node"`
	State     string    `json:"state"`
	Healthy   bool      `json:"healthy"`
	Addr      string    `json:"addr,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Message   string    `json:"message,omitempty"`
}

// ScaleRequest is the body of POST /v1/apps/{app}/formation.
type ScaleRequest struct {
	Counts map[string]int `json:"counts"`
	// MemoryMB and CPU (MHz), if set, apply to every process in Counts.
	MemoryMB int `json:"memory_mb,omitempty"`
	CPU      int `json:"cpu,omitempty"`
}

// Formation is an app's process counts.
type Formation struct {
	App    string         `json:"app"`
	Counts map[string]int `json:"counts"`
}

// CheckRequest sets a process type's health check.
type CheckRequest struct {
	Type     string `json:"type"` // http, tcp or none
	Path     string `json:"path,omitempty"`
	Interval string `json:"interval,omitempty"` // Go duration, e.g. "1s"
	Timeout  string `json:"timeout,omitempty"`
}

// DeployStep is one recorded step of a deploy.
type DeployStep struct {
	State string    `json:"state"`
	At    time.Time `json:"at"`
	Note  string    `json:"note,omitempty"`
}

// Deploy takes an app from one release to the next.
type Deploy struct {
	ID     string       `json:"id"`
	App    string       `json:"app"`
	From   uint64       `json:"from"`
	To     uint64       `json:"to"`
	State  string       `json:"state"`
	Reason string       `json:"reason,omitempty"`
	Steps  []DeployStep `json:"steps"`
}

// RestartRequest is the body of POST /v1/apps/{app}/restart.
type RestartRequest struct {
	Process string `json:"process,omitempty"`
}

// Instances lists an app's instances.
func (c *Client) Instances(ctx context.Context, app string) ([]Instance, error) {
	var out []Instance
	_, err := c.get(ctx, "/v1/apps/"+esc(app)+"/instances", nil, nil, &out)
	return out, err
}

// Scale changes process counts; the runtime applies them at once.
func (c *Client) Scale(ctx context.Context, app string, req ScaleRequest) (*Formation, error) {
	var out Formation
	if err := c.write(ctx, http.MethodPost, "/v1/apps/"+esc(app)+"/formation", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetCheck sets a process type's health check.
func (c *Client) SetCheck(ctx context.Context, app, process string, req CheckRequest) error {
	return c.write(ctx, http.MethodPut, "/v1/apps/"+esc(app)+"/checks/"+esc(process), req, nil)
}

// Deploys lists an app's deploys, newest first.
func (c *Client) Deploys(ctx context.Context, app string, q *QueryOptions) ([]Deploy, *QueryMeta, error) {
	var out []Deploy
	meta, err := c.get(ctx, "/v1/apps/"+esc(app)+"/deploys", q, nil, &out)
	return out, meta, err
}

// Restart replaces the app's instances (of one process type, or all), one
// at a time.
func (c *Client) Restart(ctx context.Context, app, process string) error {
	return c.write(ctx, http.MethodPost, "/v1/apps/"+esc(app)+"/restart", RestartRequest{Process: process}, nil)
}

// LogsQuery selects log lines.
type LogsQuery struct {
	Process string
	Lines   int
	Since   time.Duration
	Follow  bool
}

// Logs streams log lines ("TIME web.1: text") to w until the server ends
// the stream or ctx is canceled.
func (c *Client) Logs(ctx context.Context, app string, q LogsQuery, w io.Writer) error {
	v := url.Values{}
	if q.Process != "" {
		v.Set("process", q.Process)
	}
	if q.Lines > 0 {
		v.Set("lines", strconv.Itoa(q.Lines))
	}
	if q.Since > 0 {
		v.Set("since", q.Since.String())
	}
	if q.Follow {
		v.Set("follow", "true")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.addr+"/v1/apps/"+esc(app)+"/logs?"+v.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(w, sc.Text())
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading logs: %w", err)
	}
	return nil
}

// HeaderExitCode is the trailer that carries a one-off command's exit code.
const HeaderExitCode = "X-Berth-Exit-Code"

// Run runs a one-off command with the app's current release and config,
// copying stdin to it and its output to stdout, and returns its exit code.
// Detached, it returns at once with the instance's ID printed to stdout.
func (c *Client) Run(ctx context.Context, app string, command []string, detach bool, stdin io.Reader, stdout io.Writer) (int, error) {
	v := url.Values{"cmd": command}
	if detach {
		v.Set("detach", "true")
	}
	if stdin == nil || detach {
		stdin = strings.NewReader("")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.addr+"/v1/apps/"+esc(app)+"/run?"+v.Encode(), io.NopCloser(stdin))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return 0, fmt.Errorf("reading output: %w", err)
	}
	code, err := strconv.Atoi(resp.Trailer.Get(HeaderExitCode))
	if err != nil {
		return 0, fmt.Errorf("the server did not report an exit code (connection lost?)")
	}
	return code, nil
}

// send does a raw request with the token and maps error statuses.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("berth server at %s: %w", c.addr, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}
