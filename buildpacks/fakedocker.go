package buildpacks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The real client and the fake both satisfy DockerAPI; the compiler checks.
var (
	_ DockerAPI = (*client.Client)(nil)
	_ DockerAPI = (*FakeDocker)(nil)
)

// FakeDocker is an in-memory DockerAPI for unit tests of code that uses a
// Builder. It replays canned engine output and records what it was asked.
// Set the fields before use; it is safe for concurrent use.
type FakeDocker struct {
	// BuildStream is the JSON message stream ImageBuild answers with.
	BuildStream string
	// PushStream is the JSON message stream ImagePush answers with.
	PushStream string
	// RunOutput is what a container started by Run prints on stdout, and
	// RunExitCode its exit status.
	RunOutput   string
	RunExitCode int64
	// Err, if set, is returned by every call.
	Err error

	mu sync.Mutex
	// Context receives the build context ImageBuild was sent (a tar stream).
	Context bytes.Buffer
	// BuildOptions is the last ImageBuild's options.
	BuildOptions build.ImageBuildOptions
	// Tags records ImageTag calls as "source target".
	Tags []string
	// Pushed records the references ImagePush was asked for.
	Pushed []string
	// Created records the configs of created containers.
	Created []*container.Config
	// Removed records the IDs of removed containers.
	Removed []string
}

// ImageBuild implements DockerAPI.
func (f *FakeDocker) ImageBuild(_ context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return build.ImageBuildResponse{}, f.Err
	}
	f.Context.Reset()
	if _, err := f.Context.ReadFrom(buildContext); err != nil {
		return build.ImageBuildResponse{}, err
	}
	f.BuildOptions = options
	return build.ImageBuildResponse{Body: io.NopCloser(bytes.NewReader([]byte(f.BuildStream)))}, nil
}

// ImageTag implements DockerAPI.
func (f *FakeDocker) ImageTag(_ context.Context, source, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	f.Tags = append(f.Tags, source+" "+target)
	return nil
}

// ImagePush implements DockerAPI.
func (f *FakeDocker) ImagePush(_ context.Context, ref string, _ image.PushOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	f.Pushed = append(f.Pushed, ref)
	return io.NopCloser(bytes.NewReader([]byte(f.PushStream))), nil
}

// ContainerCreate implements DockerAPI.
func (f *FakeDocker) ContainerCreate(_ context.Context, config *container.Config, _ *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, _ string) (container.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return container.CreateResponse{}, f.Err
	}
	f.Created = append(f.Created, config)
	return container.CreateResponse{ID: "fake-container-id"}, nil
}

// ContainerAttach implements DockerAPI: the stream carries RunOutput in
// the engine's multiplexed stdout framing.
func (f *FakeDocker) ContainerAttach(_ context.Context, _ string, _ container.AttachOptions) (types.HijackedResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return types.HijackedResponse{}, f.Err
	}
	var framed bytes.Buffer
	if f.RunOutput != "" {
		hdr := [8]byte{1} // stream 1: stdout
		binary.BigEndian.PutUint32(hdr[4:], uint32(len(f.RunOutput)))
		framed.Write(hdr[:])
		framed.WriteString(f.RunOutput)
	}
	conn, peer := net.Pipe()
	peer.Close()
	return types.HijackedResponse{Conn: conn, Reader: bufio.NewReader(&framed)}, nil
}

// ContainerStart implements DockerAPI.
func (f *FakeDocker) ContainerStart(context.Context, string, container.StartOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Err
}

// ContainerWait implements DockerAPI.
func (f *FakeDocker) ContainerWait(context.Context, string, container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resC, errC := make(chan container.WaitResponse, 1), make(chan error, 1)
	if f.Err != nil {
		errC <- f.Err
	} else {
		resC <- container.WaitResponse{StatusCode: f.RunExitCode}
	}
	return resC, errC
}

// ContainerRemove implements DockerAPI.
func (f *FakeDocker) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Removed = append(f.Removed, id)
	return f.Err
}
