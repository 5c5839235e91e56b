package buildpacks

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DockerAPI is the part of the Docker client a Builder uses.
// *client.Client satisfies it; create that with
// client.WithAPIVersionNegotiation(), as engines older than the client
// (20.10 speaks API 1.41) refuse newer API versions.
type DockerAPI interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
	ImageTag(ctx context.Context, source, target string) error
	ImagePush(ctx context.Context, image string, options image.PushOptions) (io.ReadCloser, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerAttach(ctx context.Context, container string, options container.AttachOptions) (types.HijackedResponse, error)
	ContainerStart(ctx context.Context, container string, options container.StartOptions) error
	ContainerWait(ctx context.Context, container string, condition container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerRemove(ctx context.Context, container string, options container.RemoveOptions) error
}

// Builder runs builds, pushes and one-off containers on a Docker engine.
type Builder struct {
	docker DockerAPI
}

// NewBuilder returns a Builder that uses docker.
func NewBuilder(docker DockerAPI) *Builder { return &Builder{docker: docker} }

// ErrBuildFailed is wrapped by the *BuildError a failed build returns.
var ErrBuildFailed = errors.New("build failed")

// ErrPushFailed is wrapped when a push does not complete.
var ErrPushFailed = errors.New("push failed")

// BuildDockerfile is the name under which Build puts Plan.Dockerfile into
// the build context. A file of that name in the tree is replaced; the user's
// own Dockerfile is never touched, and neither file reaches the image (the
// engine drops what the context's .dockerignore names, and Build writes a
// .dockerignore naming both, after applying the user's own).
const BuildDockerfile = ".berth.Dockerfile"

// BuildOptions configures one build.
type BuildOptions struct {
	// Tag is the local tag to give the image, e.g. "berth/web:build-12".
	Tag string
	// CACerts are extra PEM CA certificates (corporate proxies). They are
	// passed as the build argument BERTH_CA_CERTS (PEM text, certificates
	// concatenated). Generated Dockerfiles install and trust them
	// (update-ca-certificates) before any step that downloads; a user
	// Dockerfile that needs them declares `ARG BERTH_CA_CERTS` and does the
	// same.
	CACerts [][]byte
	// Proxy holds proxy settings passed as build arguments: HTTP_PROXY,
	// HTTPS_PROXY, NO_PROXY, FTP_PROXY, ALL_PROXY (either case; each is also
	// passed in the other case, since tools read one or the other) and
	// GOPROXY. Docker keeps the proxy variables out of the image's history;
	// they reach RUN steps without an ARG line. Other keys are refused.
	Proxy map[string]string
	// Log receives the build output as it comes; nil discards it.
	Log io.Writer
}

// tailLines is how much output a BuildError keeps.
const tailLines = 10

// BuildError is a build that ran and failed.
type BuildError struct {
	Step    string   // the step that failed, e.g. "Step 3/9 : RUN npm ci"; "" if none started
	Message string   // the engine's error message
	Tail    []string // the last lines of output before the failure
}

func (e *BuildError) Error() string {
	var b strings.Builder
	b.WriteString("build failed")
	if e.Step != "" {
		b.WriteString(" at " + e.Step)
	}
	b.WriteString(": " + e.Message)
	if len(e.Tail) > 0 {
		b.WriteString("\nlast output:\n  " + strings.Join(e.Tail, "\n  "))
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return ErrBuildFailed }

// Build builds the tree in dir with plan.Dockerfile and returns the image
// ID. The tree is not modified: the build context is streamed from it,
// filtered by its .dockerignore, with plan.Dockerfile added as
// BuildDockerfile. A build that fails returns a *BuildError naming the
// failing step and the last lines of output.
func (b *Builder) Build(ctx context.Context, dir string, plan *Plan, opts BuildOptions) (imageID string, err error) {
	if plan == nil || len(plan.Dockerfile) == 0 {
		return "", errors.New("build: the plan has no Dockerfile")
	}
	args, err := buildArgs(opts)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}

	// Stream the context: a tree can be large, and the engine reads it as
	// it comes. The writer goroutine ends when the tree is written or when
	// the reader side is closed below, whichever is first.
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeContext(ctx, pw, dir, map[string][]byte{
			BuildDockerfile: plan.Dockerfile,
			".dockerignore": []byte(BuildDockerfile + "\n.dockerignore\n"),
		}))
	}()
	defer func() {
		pr.Close()
		<-done
	}()

	bo := build.ImageBuildOptions{
		Dockerfile:  BuildDockerfile,
		BuildArgs:   args,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1, // BuildKit needs a session; the classic builder is enough here
	}
	if opts.Tag != "" {
		bo.Tags = []string{opts.Tag}
	}
	resp, err := b.docker.ImageBuild(ctx, pr, bo)
	if err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	defer resp.Body.Close()
	return readBuildStream(resp.Body, log)
}

// buildArgs turns the options into the engine's build arguments.
func buildArgs(opts BuildOptions) (map[string]*string, error) {
	args := map[string]*string{}
	set := func(k, v string) { args[k] = &v }
	for k, v := range opts.Proxy {
		switch up := strings.ToUpper(k); {
		case k == "GOPROXY":
			set(k, v)
		case (k == up || k == strings.ToLower(k)) && isProxyVar(up):
			set(k, v)
			if _, both := opts.Proxy[otherCase(k)]; !both {
				set(otherCase(k), v)
			}
		default:
			return nil, fmt.Errorf("proxy setting %q is not one of HTTP_PROXY, HTTPS_PROXY, NO_PROXY, FTP_PROXY, ALL_PROXY (upper or lower case) or GOPROXY", k)
		}
	}
	if len(opts.CACerts) > 0 {
		var pems []string
		for i, c := range opts.CACerts {
			if err := checkPEM(c); err != nil {
				return nil, fmt.Errorf("CA certificate %d: %w", i+1, err)
			}
			pems = append(pems, strings.TrimSpace(string(c)))
		}
		set(CACertsArg, strings.Join(pems, "\n")+"\n")
	}
	return args, nil
}

func isProxyVar(k string) bool {
	switch k {
	case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "FTP_PROXY", "ALL_PROXY":
		return true
	}
	return false
}

func otherCase(k string) string {
	if up := strings.ToUpper(k); up != k {
		return up
	}
	return strings.ToLower(k)
}

// checkPEM accepts one or more PEM CERTIFICATE blocks and nothing else.
func checkPEM(data []byte) error {
	rest, n := data, 0
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %q is not a CERTIFICATE", blk.Type)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return errors.New("text after the last PEM block")
	}
	return nil
}

// engineMessage is one message of the engine's JSON progress stream (the
// fields of the client's jsonmessage.JSONMessage that matter here; that
// package would pull in terminal handling).
type engineMessage struct {
	Stream      string          `json:"stream"`
	Status      string          `json:"status"`
	ID          string          `json:"id"`
	Progress    string          `json:"progress"`
	Aux         json.RawMessage `json:"aux"`
	Error       string          `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

func (m *engineMessage) errorText() string {
	if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
		return strings.TrimSpace(m.ErrorDetail.Message)
	}
	return strings.TrimSpace(m.Error)
}

// readBuildStream decodes the engine's JSON message stream, copies the
// output to log and returns the built image's ID.
func readBuildStream(r io.Reader, log io.Writer) (string, error) {
	var (
		id, step string
		tail     lineTail
	)
	dec := json.NewDecoder(r)
	for {
		var m engineMessage
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("build: read the engine's output: %w", err)
		}
		text := m.Stream
		if text == "" && m.Status != "" { // pulling the base image
			text = m.Status
			if m.ID != "" {
				text = m.ID + ": " + text
			}
			text += "\n"
		}
		if text != "" {
			_, _ = io.WriteString(log, text)
			for _, line := range tail.add(text) {
				if strings.HasPrefix(line, "Step ") {
					step = line
				}
			}
		}
		if msg := m.errorText(); msg != "" {
			return "", &BuildError{Step: step, Message: msg, Tail: tail.last(tailLines)}
		}
		if m.Aux != nil {
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
	if id == "" {
		// Engines before the aux message only said it in words.
		for _, line := range tail.last(tailLines) {
			if s, ok := strings.CutPrefix(line, "Successfully built "); ok {
				id = strings.TrimSpace(s)
			}
		}
	}
	if id == "" {
		return "", &BuildError{Step: step, Message: "the engine's output ended without an image ID", Tail: tail.last(tailLines)}
	}
	return id, nil
}

// lineTail assembles streamed text into lines and remembers the last ones.
type lineTail struct {
	partial string
	lines   []string
}

// add takes a chunk of output and returns the lines it completed.
func (t *lineTail) add(chunk string) []string {
	chunk = t.partial + chunk
	parts := strings.Split(chunk, "\n")
	t.partial = parts[len(parts)-1]
	var done []string
	for _, l := range parts[:len(parts)-1] {
		l = strings.TrimRight(l, "\r")
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		done = append(done, l)
	}
	t.lines = append(t.lines, done...)
	if len(t.lines) > 4*tailLines {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-tailLines:]...)
	}
	return done
}

func (t *lineTail) last(n int) []string {
	lines := t.lines
	if p := strings.TrimSpace(t.partial); p != "" {
		lines = append(lines[:len(lines):len(lines)], p)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return append([]string(nil), lines...)
}

// anonymousAuth is an empty registry credential, base64 JSON "{}": the
// engine wants the header even when the registry needs no login.
const anonymousAuth = "e30="

// Push tags image as ref (e.g. "127.0.0.1:5000/web:v3") and pushes it,
// writing progress to log (nil discards it). It returns the manifest digest
// ("sha256:...") the registry reported.
func (b *Builder) Push(ctx context.Context, image, ref string, log io.Writer) (digest string, err error) {
	if log == nil {
		log = io.Discard
	}
	if err := b.docker.ImageTag(ctx, image, ref); err != nil {
		return "", fmt.Errorf("%w: tag %s as %s: %w", ErrPushFailed, image, ref, err)
	}
	rc, err := b.docker.ImagePush(ctx, ref, imagePushOptions())
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrPushFailed, ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m engineMessage
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return "", fmt.Errorf("%w: %s: read the engine's output: %w", ErrPushFailed, ref, err)
		}
		if msg := m.errorText(); msg != "" {
			return "", fmt.Errorf("%w: %s: %s", ErrPushFailed, ref, msg)
		}
		if m.Status != "" && m.Progress == "" { // skip the per-chunk progress bars
			line := m.Status
			if m.ID != "" {
				line = m.ID + ": " + line
			}
			_, _ = io.WriteString(log, line+"\n")
		}
		if m.Aux != nil {
			var aux struct{ Digest string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.Digest != "" {
				digest = aux.Digest
			}
		}
	}
	if !strings.HasPrefix(digest, "sha256:") {
		return "", fmt.Errorf("%w: %s: the engine did not report the pushed manifest's digest", ErrPushFailed, ref)
	}
	return digest, nil
}

func imagePushOptions() image.PushOptions {
	return image.PushOptions{RegistryAuth: anonymousAuth}
}

// removeTimeout bounds removing a one-off container after its run, which
// happens even when the caller's context is done.
const removeTimeout = 30 * time.Second

// Run runs cmd once in a new container of image and returns its exit code,
// streaming its stdout and stderr to log (nil discards them). env holds
// "NAME=value" entries. The container is removed afterwards, also when ctx
// ends first (then the container is killed and ctx's error returned).
//
// cmd runs as `/bin/sh -c cmd`, replacing the image's entrypoint, which is
// how Heroku runs Procfile commands. Running a shell over text is safe here
// because the text is the app's own (its Procfile, from its repository) and
// runs inside the app's own container, never on the host; no name or value
// from elsewhere is ever put into cmd. The image needs /bin/sh.
func (b *Builder) Run(ctx context.Context, image string, cmd string, env []string, log io.Writer) (exitCode int, err error) {
	if log == nil {
		log = io.Discard
	}
	created, err := b.docker.ContainerCreate(ctx, &container.Config{
		Image:        image,
		Entrypoint:   []string{"/bin/sh", "-c"},
		Cmd:          []string{cmd},
		Env:          env,
		AttachStdout: true,
		AttachStderr: true,
		Labels:       map[string]string{"berth.one-off": "true"},
	}, &container.HostConfig{}, nil, nil, "")
	if err != nil {
		return -1, fmt.Errorf("run in %s: create container: %w", image, err)
	}
	id := created.ID
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeTimeout)
		defer cancel()
		if rerr := b.docker.ContainerRemove(rctx, id, container.RemoveOptions{Force: true}); rerr != nil && err == nil {
			err = fmt.Errorf("run in %s: remove container %s: %w", image, shortID(id), rerr)
		}
	}()

	// Attach and wait before starting, so no output and no exit is missed.
	att, err := b.docker.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return -1, fmt.Errorf("run in %s: attach: %w", image, err)
	}
	defer att.Close()
	waitC, waitErrC := b.docker.ContainerWait(ctx, id, container.WaitConditionNextExit)
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(log, log, att.Reader)
		copied <- err
	}()
	if err := b.docker.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		att.Close()
		<-copied
		return -1, fmt.Errorf("run in %s: start: %w", image, err)
	}
	select {
	case res := <-waitC:
		<-copied // the stream ends when the container does
		if res.Error != nil && res.Error.Message != "" {
			return -1, fmt.Errorf("run in %s: wait: %s", image, res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-waitErrC:
		att.Close()
		<-copied
		if ctx.Err() != nil {
			return -1, fmt.Errorf("run in %s: %w", image, ctx.Err())
		}
		return -1, fmt.Errorf("run in %s: wait: %w", image, err)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
