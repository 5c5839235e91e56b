package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeDocker is an engine that knows images and creates containers, for
// the logic around pulling. Methods it does not implement panic (the
// embedded nil interface), which flags a test that reaches them.
type fakeDocker struct {
	Docker

	mu      sync.Mutex
	images  map[string]bool
	pullErr string // an error the pull stream reports
	pulled  []string
	auth    []string
	created []string
}

var _ Docker = (*fakeDocker)(nil)

func (f *fakeDocker) ContainerCreate(_ context.Context, cfg *container.Config, _ *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.images[cfg.Image] {
		return container.CreateResponse{}, fmt.Errorf("No such image: %s: %w", cfg.Image, cerrdefs.ErrNotFound)
	}
	f.created = append(f.created, name)
	return container.CreateResponse{ID: fmt.Sprintf("c%d", len(f.created))}, nil
}

func (f *fakeDocker) ImagePull(_ context.Context, ref string, opts image.PullOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulled = append(f.pulled, ref)
	f.auth = append(f.auth, opts.RegistryAuth)
	stream := `{"status":"Pulling from app"}` + "\n"
	if f.pullErr != "" {
		stream += fmt.Sprintf(`{"errorDetail":{"message":%q},"error":%q}`, f.pullErr, f.pullErr) + "\n"
	} else {
		f.images[ref] = true
		stream += `{"status":"Downloaded newer image"}` + "\n"
	}
	return io.NopCloser(strings.NewReader(stream)), nil
}

func fakeRuntime(f *fakeDocker) *Runtime {
	return &Runtime{
		cfg:    Config{Cluster: "c", RegistryAuth: "e30="},
		log:    slog.New(slog.DiscardHandler),
		docker: f,
		pulls:  map[string]*sync.Mutex{},
		insts:  map[string]*inst{},
	}
}

func TestCreatePullsMissingImages(t *testing.T) {
	f := &fakeDocker{images: map[string]bool{"have": true}}
	r := fakeRuntime(f)
	ctx := context.Background()

	if _, err := r.create(ctx, spec{Name: "a", Config: &container.Config{Image: "have"}}); err != nil {
		t.Fatalf("create with a present image: %v", err)
	}
	if len(f.pulled) != 0 {
		t.Fatalf("pulled %v for a present image", f.pulled)
	}
	if _, err := r.create(ctx, spec{Name: "b", Config: &container.Config{Image: "reg/app@sha256:1"}}); err != nil {
		t.Fatalf("create with a missing image: %v", err)
	}
	if len(f.pulled) != 1 || f.pulled[0] != "reg/app@sha256:1" || f.auth[0] != "e30=" {
		t.Fatalf("pulls %v with auth %v", f.pulled, f.auth)
	}
	if len(f.created) != 2 {
		t.Fatalf("created %v", f.created)
	}

	f.pullErr = "manifest unknown"
	_, err := r.create(ctx, spec{Name: "c", Config: &container.Config{Image: "reg/gone@sha256:2"}})
	if err == nil || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("create with an image that cannot be pulled: %v", err)
	}
}
