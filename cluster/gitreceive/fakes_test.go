package gitreceive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	gossh "golang.org/x/crypto/ssh"
)

var (
	_ Auth     = (*fakeAuth)(nil)
	_ Pipeline = (*fakePipeline)(nil)
)

// fakeAuth knows keys by fingerprint and which callers may push to which
// apps.
type fakeAuth struct {
	mu       sync.Mutex
	keys     map[string]string   // fingerprint → caller name
	apps     map[string][]string // app → callers with deploy rights
	branches []string
	asked    []string // apps Authorize was asked about
}

func newFakeAuth() *fakeAuth {
	return &fakeAuth{keys: map[string]string{}, apps: map[string][]string{}, branches: []string{"main", "master"}}
}

func (a *fakeAuth) addKey(pub gossh.PublicKey, caller string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[gossh.FingerprintSHA256(pub)] = caller
}

func (a *fakeAuth) addApp(app string, callers ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.apps[app] = callers
}

func (a *fakeAuth) authorizeCalls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.asked)
}

func (a *fakeAuth) Authenticate(key gossh.PublicKey) (Caller, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	name, ok := a.keys[gossh.FingerprintSHA256(key)]
	if !ok {
		return Caller{}, errors.New("unknown key")
	}
	return Caller{Name: name, TokenAccessor: "acc-" + name}, nil
}

func (a *fakeAuth) Authorize(_ context.Context, c Caller, app string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, app)
	callers, ok := a.apps[app]
	if !ok {
		return fmt.Errorf("app %s does not exist", app)
	}
	if !slices.Contains(callers, c.Name) {
		return fmt.Errorf("%s has no deploy right on %s", c.Name, app)
	}
	return nil
}

func (a *fakeAuth) DeployBranches(context.Context, string) ([]string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.branches), nil
}

// deployed is what the fake pipeline saw of one deploy.
type deployed struct {
	App, Branch, Commit string
	Caller              Caller
	Files               map[string]string
	TarErr              error
}

// fakePipeline records deploys and writes two progress lines. With fail
// set it fails; with block set it waits for block to close or its context
// to end, reporting the end on canceled.
type fakePipeline struct {
	mu      sync.Mutex
	deploys []deployed
	fail    error
	block   chan struct{}
	// ignoreSource makes Deploy succeed without reading the tar.
	ignoreSource bool
	started      chan string // the commit, once a deploy has read its source
	canceled     chan error  // the context's cause, if a blocked deploy is canceled
}

func newFakePipeline() *fakePipeline {
	return &fakePipeline{started: make(chan string, 16), canceled: make(chan error, 16)}
}

func (p *fakePipeline) seen() []deployed {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.deploys)
}

func (p *fakePipeline) Deploy(ctx context.Context, req DeployRequest, out io.Writer) error {
	// Progress before and after reading the source: the hook must take
	// output while it is still sending the tar.
	fmt.Fprintf(out, "receiving %s\n", req.App)
	p.mu.Lock()
	ignore := p.ignoreSource
	p.mu.Unlock()
	var files map[string]string
	var err error
	if !ignore {
		files, err = readTar(req.Source)
	}
	p.mu.Lock()
	p.deploys = append(p.deploys, deployed{req.App, req.Branch, req.Commit, req.Caller, files, err})
	fail, block := p.fail, p.block
	p.mu.Unlock()
	fmt.Fprintf(out, "building %s at %s\n", req.App, req.Commit[:7])
	p.started <- req.Commit
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			p.canceled <- context.Cause(ctx)
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	fmt.Fprintf(out, "deployed %s\n", req.App)
	return nil
}

// readTar returns the regular files of a tar stream.
func readTar(r io.Reader) (map[string]string, error) {
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return files, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return files, err
		}
		files[h.Name] = string(b)
	}
}
