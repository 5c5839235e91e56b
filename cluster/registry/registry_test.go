package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
	"github.com/opencontainers/go-digest"
	"go.uber.org/goleak"
)

// goroutines handlers.NewApp starts and nothing can stop (DESIGN.md).
var knownLeaks = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/docker/go-events.(*Broadcaster).run"),
}

func TestMain(m *testing.M) {
	code := m.Run()
	if appBinDir != "" {
		os.RemoveAll(appBinDir)
	}
	if code == 0 {
		if err := goleak.Find(knownLeaks...); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left running: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestNewRequiresDir(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("New without Dir: %v, want ErrInvalidArgument", err)
	}
}

func TestStartStop(t *testing.T) {
	r, err := New(Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr() != "127.0.0.1:0" {
		t.Fatalf("Addr before Start = %q", r.Addr())
	}
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(r.Addr(), ":0") {
		t.Fatalf("Addr after Start = %q, want the real port", r.Addr())
	}
	if err := r.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	c := newClient(t, r.Addr())
	if got := c.status(http.MethodGet, "/v2/"); got != http.StatusOK {
		t.Fatalf("GET /v2/ = %d", got)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := r.Start(ctx); !errors.Is(err, ErrStarted) {
		t.Fatalf("Start after Stop: %v", err)
	}
	// Stop without Start.
	r2, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStopLeaksNoGoroutines: a registry that served a push and was stopped
// leaves nothing running but what distribution cannot stop.
func TestStopLeaksNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	r, err := New(Config{Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, r.Addr())
	c.pushImage("leak/app", "v1", randomBytes(1000))
	if _, err := r.Collect(context.Background(), map[string][]string{"leak/app": nil}); err != nil {
		t.Fatal(err)
	}
	c.hc.CloseIdleConnections()
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := goleak.Find(append([]goleak.Option{before}, knownLeaks...)...); err != nil {
		t.Fatal(err)
	}
}

// TestDistributionLogsReachSlog: distribution's logging goes to the
// Registry's slog.Logger (found through the context, not logrus' global),
// and a client's 404 is not logged as an error.
func TestDistributionLogsReachSlog(t *testing.T) {
	var cap capture
	r, err := New(Config{Dir: t.TempDir(), Logger: slog.New(&cap)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(context.Background())
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	c := newClient(t, strings.TrimPrefix(srv.URL, "http://"))

	if got := c.status(http.MethodGet, "/v2/"); got != http.StatusOK {
		t.Fatalf("GET /v2/ = %d", got)
	}
	done := cap.find("response completed")
	if len(done) == 0 {
		t.Fatal("distribution's per-request log line did not reach slog: has internal/dcontext's logger key changed?")
	}
	if done[0].Level != slog.LevelDebug {
		t.Errorf("per-request line at %v, want DEBUG", done[0].Level)
	}

	missing := digest.FromString("nope")
	if got := c.status(http.MethodHead, "/v2/a/b/blobs/"+missing.String()); got != http.StatusNotFound {
		t.Fatalf("HEAD missing blob = %d", got)
	}
	errs := cap.find("response completed with error")
	if len(errs) == 0 {
		t.Fatal("no log line for the 404")
	}
	for _, rec := range errs {
		if rec.Level >= slog.LevelWarn {
			t.Errorf("404 logged at %v", rec.Level)
		}
	}
}

func TestManifestExists(t *testing.T) {
	r := startRegistry(t)
	c := newClient(t, r.Addr())
	img := c.pushImage("team/app", "v1", randomBytes(100))
	ctx := context.Background()
	for _, tc := range []struct {
		repo string
		d    digest.Digest
		want bool
	}{
		{"team/app", img.manifest, true},
		{"team/app", img.layers[0], false}, // a blob, not a manifest
		{"team/other", img.manifest, false},
		{"nobody", digest.FromString("x"), false},
	} {
		got, err := r.ManifestExists(ctx, tc.repo, tc.d.String())
		if err != nil || got != tc.want {
			t.Errorf("ManifestExists(%s, %s) = %v, %v; want %v", tc.repo, tc.d, got, err, tc.want)
		}
	}
	if _, err := r.ManifestExists(ctx, "Bad Name", img.manifest.String()); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad repo: %v", err)
	}
	if _, err := r.ManifestExists(ctx, "team/app", "v1"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("tag instead of digest: %v", err)
	}
}

// TestCollect without Docker: unkept manifests go with their tags and their
// own blobs; shared blobs and other repositories stay.
func TestCollect(t *testing.T) {
	r := startRegistry(t)
	c := newClient(t, r.Addr())
	ctx := context.Background()

	if st, err := r.Collect(ctx, nil); err != nil || st.ManifestsDeleted+st.BlobsDeleted != 0 {
		t.Fatalf("Collect on an empty registry: %+v, %v", st, err)
	}

	shared := randomBytes(2000)
	v1 := c.pushImage("team/app", "v1", shared, randomBytes(50_000))
	v2 := c.pushImage("team/app", "v2", randomBytes(50_000))
	v3 := c.pushImage("team/app", "v3", shared, randomBytes(50_000))
	other := c.pushImage("team/other", "v1", randomBytes(50_000))
	before, err := r.DiskUsage()
	if err != nil {
		t.Fatal(err)
	}

	st, err := r.Collect(ctx, map[string][]string{"team/app": {v3.manifest.String()}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ManifestsDeleted != 2 {
		t.Errorf("ManifestsDeleted = %d, want 2", st.ManifestsDeleted)
	}
	// v1 and v2: manifest, config and own layer each.
	if st.BlobsDeleted != 6 {
		t.Errorf("BlobsDeleted = %d, want 6", st.BlobsDeleted)
	}
	if st.BytesBefore != before || st.BytesAfter >= st.BytesBefore {
		t.Errorf("bytes %d -> %d (DiskUsage before: %d)", st.BytesBefore, st.BytesAfter, before)
	}
	if after, _ := r.DiskUsage(); after != st.BytesAfter {
		t.Errorf("DiskUsage = %d, BytesAfter = %d", after, st.BytesAfter)
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/v2/team/app/manifests/" + v1.manifest.String(), 404},
		{"/v2/team/app/manifests/" + v2.manifest.String(), 404},
		{"/v2/team/app/manifests/v1", 404}, // the tag went with it
		{"/v2/team/app/blobs/" + v1.layers[1].String(), 404},
		{"/v2/team/app/blobs/" + v2.config.String(), 404},
		{"/v2/team/app/manifests/v3", 200},
		{"/v2/team/app/blobs/" + v3.layers[0].String(), 200}, // shared with v1
		{"/v2/team/app/blobs/" + v3.layers[1].String(), 200},
		{"/v2/team/app/blobs/" + v3.config.String(), 200},
		{"/v2/team/other/manifests/v1", 200}, // not named in keep
		{"/v2/team/other/blobs/" + other.layers[0].String(), 200},
	} {
		if got := c.status(http.MethodGet, tc.path); got != tc.want {
			t.Errorf("GET %s = %d, want %d", tc.path, got, tc.want)
		}
	}
	tags := c.do(http.MethodGet, "/v2/team/app/tags/list", nil, nil)
	b, _ := io.ReadAll(tags.Body)
	tags.Body.Close()
	if !strings.Contains(string(b), `"v3"`) || strings.Contains(string(b), `"v1"`) || strings.Contains(string(b), `"v2"`) {
		t.Errorf("tags after Collect: %s", b)
	}

	// Keeping nothing empties the repository; pushing to it again works.
	if st, err := r.Collect(ctx, map[string][]string{"team/app": {}}); err != nil || st.ManifestsDeleted != 1 {
		t.Fatalf("Collect keeping nothing: %+v, %v", st, err)
	}
	v4 := c.pushImage("team/app", "v4", shared)
	if ok, err := r.ManifestExists(ctx, "team/app", v4.manifest.String()); err != nil || !ok {
		t.Fatalf("push after Collect: %v %v", ok, err)
	}

	if _, err := r.Collect(ctx, map[string][]string{"team/app": {"latest"}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Collect with a tag in keep: %v", err)
	}
}

// TestCollectKeepsIndexChildren: keeping an index keeps the per-platform
// manifests it lists.
func TestCollectKeepsIndexChildren(t *testing.T) {
	r := startRegistry(t)
	c := newClient(t, r.Addr())
	amd := c.pushImage("multi/app", "", randomBytes(1000))
	arm := c.pushImage("multi/app", "", randomBytes(1000))
	idx := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []desc `json:"manifests"`
	}{SchemaVersion: 2, MediaType: mtIndex}
	for i, img := range []image{amd, arm} {
		resp := c.do(http.MethodHead, "/v2/multi/app/manifests/"+img.manifest.String(), nil, nil)
		resp.Body.Close()
		idx.Manifests = append(idx.Manifests, desc{MediaType: mtManifest, Digest: img.manifest, Size: resp.ContentLength,
			Platform: map[string]string{"os": "linux", "architecture": []string{"amd64", "arm64"}[i]}})
	}
	index := c.putManifest("multi/app", "v1", mtIndex, idx)
	old := c.pushImage("multi/app", "v0", randomBytes(1000))

	st, err := r.Collect(context.Background(), map[string][]string{"multi/app": {index.String()}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ManifestsDeleted != 1 {
		t.Errorf("ManifestsDeleted = %d, want 1 (v0)", st.ManifestsDeleted)
	}
	for _, d := range []digest.Digest{index, amd.manifest, arm.manifest, amd.layers[0], arm.config} {
		kind := "manifests"
		if d == amd.layers[0] || d == arm.config {
			kind = "blobs"
		}
		if got := c.status(http.MethodGet, "/v2/multi/app/"+kind+"/"+d.String()); got != 200 {
			t.Errorf("GET %s %s = %d after Collect", kind, d, got)
		}
	}
	if got := c.status(http.MethodGet, "/v2/multi/app/manifests/"+old.manifest.String()); got != 404 {
		t.Errorf("v0 still there: %d", got)
	}
}

// TestCollectSparesPushInProgress: blobs a push has uploaded but not yet
// referenced from a manifest survive a Collect, so the push's manifest PUT
// still succeeds; once the manifest exists, they are collected with it.
func TestCollectSparesPushInProgress(t *testing.T) {
	r := startRegistry(t)
	c := newClient(t, r.Addr())
	ctx := context.Background()
	oldLayer := randomBytes(1000)
	old := c.pushImage("team/app", "v1", oldLayer)

	// A push of v2 is half done: its new layer is up, it found v1's layer
	// already there (HEAD 200), and its manifest is not up yet.
	layer := randomBytes(5000)
	layerDigest := c.pushBlob("team/app", layer)
	if got := c.status(http.MethodHead, "/v2/team/app/blobs/"+old.layers[0].String()); got != 200 {
		t.Fatalf("HEAD = %d", got)
	}

	st, err := r.Collect(ctx, map[string][]string{"team/app": {}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ManifestsDeleted != 1 {
		t.Errorf("ManifestsDeleted = %d", st.ManifestsDeleted)
	}
	for _, d := range []digest.Digest{layerDigest, old.layers[0]} {
		if got := c.status(http.MethodHead, "/v2/team/app/blobs/"+d.String()); got != 200 {
			t.Fatalf("blob %s of a push in progress was collected: HEAD = %d", d, got)
		}
	}
	// The push finishes (re-sending its layers is harmless).
	v2 := c.pushImage("team/app", "v2", oldLayer, layer)
	v3 := c.pushImage("team/app", "v3", randomBytes(10))
	// Now nothing is pending: keeping v3 only collects v2 and the layers.
	st, err = r.Collect(ctx, map[string][]string{"team/app": {v3.manifest.String()}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ManifestsDeleted != 1 {
		t.Errorf("second Collect: ManifestsDeleted = %d, want 1", st.ManifestsDeleted)
	}
	for _, d := range []digest.Digest{v2.layers[0], v2.layers[1]} {
		if got := c.status(http.MethodHead, "/v2/team/app/blobs/"+d.String()); got != 404 {
			t.Errorf("blob %s survived the second Collect: HEAD = %d", d, got)
		}
	}
}

// TestCollectWaitsForUploads: Collect waits for an upload in flight, and a
// push that arrives during Collect waits for it.
func TestCollectWaitsForUploads(t *testing.T) {
	r := startRegistry(t)
	c := newClient(t, r.Addr())
	ctx := context.Background()
	u := c.startUpload("team/app")

	// A PATCH whose body trickles in.
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPatch, u, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	patched := make(chan int, 1)
	go func() {
		resp, err := c.hc.Do(req)
		if err != nil {
			patched <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		patched <- resp.StatusCode
	}()
	if _, err := pw.Write(randomBytes(1000)); err != nil {
		t.Fatal(err)
	}
	// Wait until the PATCH holds its share of the gate.
	if err := wait.For(ctx, "the PATCH to be served", 10*time.Second, 5*time.Millisecond, func(context.Context) error {
		if !r.gate.TryAcquire(gateWeight) {
			return nil
		}
		r.gate.Release(gateWeight)
		return errors.New("gate free")
	}); err != nil {
		t.Fatal(err)
	}

	collected := make(chan error, 1)
	go func() {
		_, err := r.Collect(ctx, nil)
		collected <- err
	}()
	select {
	case err := <-collected:
		t.Fatalf("Collect finished while an upload was in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	// A Collect that gives up waiting leaves everything as it was.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := r.Collect(short, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Collect with a short deadline: %v", err)
	}

	pw.Close()
	if code := <-patched; code != http.StatusAccepted {
		t.Fatalf("PATCH = %d", code)
	}
	select {
	case err := <-collected:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Collect did not finish after the upload did")
	}
}

func TestCollectPurgesAbandonedUploads(t *testing.T) {
	r := startRegistry(t)
	c := newClient(t, r.Addr())
	c.startUpload("team/app")
	st, err := r.Collect(context.Background(), nil)
	if err != nil || st.UploadsPurged != 0 {
		t.Fatalf("fresh upload purged: %+v %v", st, err)
	}
	n, err := purgeUploads(r.dir, time.Now().Add(time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("purgeUploads with a cutoff in the future = %d, %v; want 1", n, err)
	}
}

// TestTwoRegistriesInOneProcess: two registries share no state: what is
// pushed to one is not in the other, collecting one leaves the other alone,
// and each logs to its own logger.
func TestTwoRegistriesInOneProcess(t *testing.T) {
	var capA, capB capture
	mk := func(cp *capture) *Registry {
		r, err := New(Config{Dir: t.TempDir(), Addr: "127.0.0.1:0", Logger: slog.New(cp)})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Stop(context.Background()) })
		return r
	}
	a, b := mk(&capA), mk(&capB)
	ca, cb := newClient(t, a.Addr()), newClient(t, b.Addr())
	ctx := context.Background()

	imgA := ca.pushImage("team/app", "v1", randomBytes(1000))
	if ok, _ := b.ManifestExists(ctx, "team/app", imgA.manifest.String()); ok {
		t.Fatal("image pushed to A is in B")
	}
	nA := len(capA.find("response completed"))
	if nA == 0 || len(capB.find("response completed")) != 0 {
		t.Fatalf("A's requests logged %d lines to A and %d to B", nA, len(capB.find("response completed")))
	}
	imgB := cb.pushImage("team/app", "v1", randomBytes(1000))
	if _, err := a.Collect(ctx, map[string][]string{"team/app": nil}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.ManifestExists(ctx, "team/app", imgA.manifest.String()); ok {
		t.Error("A's image survived A's Collect")
	}
	if ok, _ := b.ManifestExists(ctx, "team/app", imgB.manifest.String()); !ok {
		t.Error("A's Collect removed B's image")
	}
	if len(capA.find("registry collected")) != 1 || len(capB.find("registry collected")) != 0 {
		t.Error("Collect logged to the wrong registry")
	}
}
