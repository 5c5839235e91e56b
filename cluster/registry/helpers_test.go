package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// testLogger discards logs unless BERTH_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startRegistry starts a registry on a free loopback port over a temp dir
// and stops it when the test ends.
func startRegistry(t *testing.T) *Registry {
	t.Helper()
	r, err := New(Config{Dir: t.TempDir(), Addr: "127.0.0.1:0", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return r
}

// client speaks the registry API directly: enough of a push to test
// Collect without a Docker engine.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newClient(t *testing.T, addr string) *client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: "http://" + addr, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *client) do(method, u string, body []byte, hdr http.Header) *http.Response {
	c.t.Helper()
	if len(u) > 0 && u[0] == '/' {
		u = c.base + u
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join([]string{mtManifest, mtIndex,
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json"}, ", "))
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp
}

// status makes a request and returns its status, discarding the body.
func (c *client) status(method, path string) int {
	c.t.Helper()
	resp := c.do(method, path, nil, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func expect(t *testing.T, resp *http.Response, code int, what string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != code {
		t.Fatalf("%s: status %d, want %d: %s", what, resp.StatusCode, code, b)
	}
}

// startUpload opens an upload session and returns its URL.
func (c *client) startUpload(repo string) string {
	c.t.Helper()
	resp := c.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	loc := resp.Header.Get("Location")
	expect(c.t, resp, http.StatusAccepted, "start upload")
	u, err := url.Parse(loc)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.base + u.RequestURI()
}

// pushBlob uploads data to repo (POST then PUT ?digest=, as docker does for
// small blobs) and returns its digest.
func (c *client) pushBlob(repo string, data []byte) digest.Digest {
	c.t.Helper()
	d := digest.FromBytes(data)
	u := c.startUpload(repo)
	sep := "?"
	if bytes.ContainsRune([]byte(u), '?') {
		sep = "&"
	}
	resp := c.do(http.MethodPut, u+sep+"digest="+url.QueryEscape(d.String()), data,
		http.Header{"Content-Type": {"application/octet-stream"}})
	expect(c.t, resp, http.StatusCreated, "finish upload")
	return d
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type desc struct {
	MediaType string            `json:"mediaType"`
	Digest    digest.Digest     `json:"digest"`
	Size      int64             `json:"size"`
	Platform  map[string]string `json:"platform,omitempty"`
}

// putManifest stores a manifest under ref (a tag or its digest) and returns
// its digest.
func (c *client) putManifest(repo, ref, mediaType string, m any) digest.Digest {
	c.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	if ref == "" {
		ref = d.String()
	}
	resp := c.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, b, http.Header{"Content-Type": {mediaType}})
	expect(c.t, resp, http.StatusCreated, "put manifest "+repo+":"+ref)
	return d
}

// image is what pushImage pushed.
type image struct {
	manifest digest.Digest
	config   digest.Digest
	layers   []digest.Digest
	size     int64 // bytes of blobs, manifest included
}

// pushImage pushes an image made of the given layers (and a config unique
// to it) to repo:tag. tag "" pushes by digest.
func (c *client) pushImage(repo, tag string, layers ...[]byte) image {
	c.t.Helper()
	var img image
	cfg := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"nonce":%q}`, rand.Text())
	img.config = c.pushBlob(repo, cfg)
	img.size += int64(len(cfg))
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: mtManifest, Config: desc{MediaType: mtConfig, Digest: img.config, Size: int64(len(cfg))}}
	for _, l := range layers {
		d := c.pushBlob(repo, l)
		img.layers = append(img.layers, d)
		img.size += int64(len(l))
		m.Layers = append(m.Layers, desc{MediaType: mtLayer, Digest: d, Size: int64(len(l))})
	}
	img.manifest = c.putManifest(repo, tag, mtManifest, m)
	return img
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// capture is a slog handler that keeps records, for logging tests.
type capture struct {
	mu      sync.Mutex
	records []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

func (c *capture) find(msg string) []slog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []slog.Record
	for _, r := range c.records {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	return out
}
