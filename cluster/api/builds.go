package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Build is one build of an app (git push, upload or image import).
type Build struct {
	ID         string    `json:"id"`
	App        string    `json:"app"`
	Status     string    `json:"status"`
	Source     string    `json:"source"`
	Commit     string    `json:"commit,omitempty"`
	Branch     string    `json:"branch,omitempty"`
	Server     string    `json:"server"`
	CreatedBy  string    `json:"created_by"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Release    uint64    `json:"release,omitempty"`
	Error      string    `json:"error,omitempty"`
	Output     string    `json:"output,omitempty"`
	// PhaseSeconds says how long each step took: start (recording the
	// build), receive (reading the
	// source), detect, build (the Docker build itself), push, release_command,
	// record (replicating the release), retention.
	PhaseSeconds map[string]float64 `json:"phase_seconds,omitempty"`
}

// BuildResultPrefix starts the last line of a streamed build: the line is
// "==> berth: ok v3" or "==> berth: error <message>".
const BuildResultPrefix = "==> berth: "

// Builds lists an app's builds, newest first, without their output.
func (c *Client) Builds(ctx context.Context, app string, q *QueryOptions) ([]Build, *QueryMeta, error) {
	var out []Build
	meta, err := c.get(ctx, "/v1/apps/"+esc(app)+"/builds", q, nil, &out)
	return out, meta, err
}

// Build returns one build with its output.
func (c *Client) Build(ctx context.Context, app, id string) (*Build, error) {
	var out Build
	if _, err := c.get(ctx, "/v1/apps/"+esc(app)+"/builds/"+esc(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UploadBuild sends a tar stream of source code to build and release,
// copying the server's progress lines to progress as they arrive. It
// returns the released version, or the build's error.
func (c *Client) UploadBuild(ctx context.Context, app string, source io.Reader, progress io.Writer) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.addr+"/v1/apps/"+esc(app)+"/builds", source)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.send(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return ReadBuildStream(resp.Body, progress)
}

// ReadBuildStream copies a streamed build's lines to progress and parses
// its result line.
func ReadBuildStream(r io.Reader, progress io.Writer) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if res, ok := strings.CutPrefix(line, BuildResultPrefix); ok {
			if msg, failed := strings.CutPrefix(res, "error "); failed {
				return 0, &Error{Code: CodeBadRequest, Message: msg}
			}
			var v uint64
			if _, err := fmt.Sscanf(res, "ok v%d", &v); err != nil {
				return 0, fmt.Errorf("unexpected build result %q", res)
			}
			return v, nil
		}
		fmt.Fprintln(progress, line)
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading build output: %w", err)
	}
	return 0, fmt.Errorf("the build stream ended without a result; see 'berth builds -a APP'")
}
