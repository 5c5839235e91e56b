package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// uploadIdle is how long an upload may sit untouched before Collect deletes
// it as abandoned (a push that died half way).
const uploadIdle = 24 * time.Hour

// blobsRoot is where distribution keeps blob data, in storage-driver paths.
const blobsRoot = "/docker/registry/v2/blobs/"

// CollectStats says what a Collect removed.
type CollectStats struct {
	ManifestsDeleted int
	BlobsDeleted     int
	// UploadsPurged counts abandoned uploads (idle for a day) removed.
	UploadsPurged int
	// BytesBefore and BytesAfter are DiskUsage around the collection.
	BytesBefore, BytesAfter int64
}

// Collect deletes, in each repo named in keep, every manifest whose digest is
// not listed (nor a child of a listed index), then garbage-collects the blobs
// no manifest references any more with distribution's storage.MarkAndSweep.
// Repos not named in keep are left alone; their manifests still hold their
// blobs. Tags that pointed at a deleted manifest are removed with it.
//
// Pushes are blocked (they wait) while it runs, and blobs that a push in
// progress has uploaded but not yet referenced from a manifest are kept, so
// GC never races an upload. keep must list whatever must survive, including
// an image just pushed whose release is not recorded yet.
func (r *Registry) Collect(ctx context.Context, keep map[string][]string) (CollectStats, error) {
	var st CollectStats
	type repoKeep struct {
		name reference.Named
		keep []digest.Digest
	}
	repos := make([]repoKeep, 0, len(keep))
	for repo, ds := range keep {
		named, err := reference.WithName(repo)
		if err != nil {
			return st, fmt.Errorf("%w: repository %q: %v", ErrInvalidArgument, repo, err)
		}
		rk := repoKeep{name: named}
		for _, s := range ds {
			d, err := digest.Parse(s)
			if err != nil {
				return st, fmt.Errorf("%w: digest %q for %s: %v", ErrInvalidArgument, s, repo, err)
			}
			rk.keep = append(rk.keep, d)
		}
		repos = append(repos, rk)
	}
	sort.Slice(repos, func(i, j int) bool { return repos[i].name.Name() < repos[j].name.Name() })

	start := time.Now()
	if err := r.gate.Acquire(ctx, gateWeight); err != nil {
		return st, fmt.Errorf("registry: collect: waiting for pushes in flight: %w", err)
	}
	defer r.gate.Release(gateWeight)

	var err error
	if st.BytesBefore, err = r.DiskUsage(); err != nil {
		return st, err
	}
	ctx = r.logCtx(ctx)
	pending := r.pending.live(time.Now())

	for _, rk := range repos {
		n, err := r.pruneRepo(ctx, rk.name, rk.keep, pending)
		st.ManifestsDeleted += n
		if err != nil {
			return st, err
		}
	}

	// MarkAndSweep fails on a registry that has never stored anything.
	for _, d := range []string{"repositories", "blobs"} {
		if err := os.MkdirAll(filepath.Join(r.dir, "docker", "registry", "v2", d), 0o700); err != nil {
			return st, fmt.Errorf("registry: collect: %w", err)
		}
	}
	sweeper := &sweepDriver{StorageDriver: r.driver, pending: pending}
	if err := storage.MarkAndSweep(ctx, sweeper, r.ns, storage.GCOpts{Quiet: true}); err != nil {
		st.BlobsDeleted = sweeper.blobsDeleted
		return st, fmt.Errorf("registry: collect: %w", err)
	}
	st.BlobsDeleted = sweeper.blobsDeleted

	if st.UploadsPurged, err = purgeUploads(r.dir, time.Now().Add(-uploadIdle)); err != nil {
		return st, err
	}
	if st.BytesAfter, err = r.DiskUsage(); err != nil {
		return st, err
	}
	r.log.Info("registry collected",
		"manifests_deleted", st.ManifestsDeleted, "blobs_deleted", st.BlobsDeleted,
		"uploads_purged", st.UploadsPurged, "bytes_before", st.BytesBefore,
		"bytes_after", st.BytesAfter, "pending", len(pending), "took", time.Since(start))
	return st, nil
}

// pruneRepo deletes the manifests of repo that are neither kept, nor
// reachable from a kept one, nor pending.
func (r *Registry) pruneRepo(ctx context.Context, name reference.Named, keep []digest.Digest, pending map[digest.Digest]bool) (int, error) {
	repo, err := r.ns.Repository(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("registry: collect %s: %w", name, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return 0, fmt.Errorf("registry: collect %s: %w", name, err)
	}
	enum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return 0, fmt.Errorf("registry: collect %s: manifest service cannot enumerate", name)
	}
	var all []digest.Digest
	err = enum.Enumerate(ctx, func(d digest.Digest) error {
		all = append(all, d)
		return nil
	})
	var notFound storagedriver.PathNotFoundError
	if errors.As(err, &notFound) {
		return 0, nil // no such repository, or no manifests in it
	}
	if err != nil {
		return 0, fmt.Errorf("registry: collect %s: list manifests: %w", name, err)
	}

	kept, err := reachable(ctx, ms, keep)
	if err != nil {
		return 0, fmt.Errorf("registry: collect %s: %w", name, err)
	}
	tags := repo.Tags(ctx)
	deleted := 0
	for _, d := range all {
		if kept[d] || pending[d] {
			continue
		}
		// Untag first: a crash in between leaves an untagged manifest for
		// the next Collect, never a tag naming a manifest that is gone.
		names, err := tags.Lookup(ctx, v1.Descriptor{Digest: d})
		if err != nil {
			return deleted, fmt.Errorf("registry: collect %s: tags of %s: %w", name, d, err)
		}
		for _, t := range names {
			if err := tags.Untag(ctx, t); err != nil {
				return deleted, fmt.Errorf("registry: collect %s: untag %s: %w", name, t, err)
			}
		}
		if err := ms.Delete(ctx, d); err != nil {
			return deleted, fmt.Errorf("registry: collect %s: delete %s: %w", name, d, err)
		}
		deleted++
	}
	return deleted, nil
}

// reachable is keep plus every manifest they reference, transitively (the
// per-platform images and attestations of an index).
func reachable(ctx context.Context, ms distribution.ManifestService, keep []digest.Digest) (map[digest.Digest]bool, error) {
	seen := map[digest.Digest]bool{}
	queue := append([]digest.Digest(nil), keep...)
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		ok, err := ms.Exists(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d, err)
		}
		if !ok {
			continue // a layer or config, or a kept digest this repo lacks
		}
		m, err := ms.Get(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s: %w", d, err)
		}
		for _, ref := range m.References() {
			queue = append(queue, ref.Digest)
		}
	}
	return seen, nil
}

// sweepDriver is the storage driver MarkAndSweep deletes through: it counts
// the blobs deleted and skips blobs (and repository links to them) that a
// push in progress still needs. MarkAndSweep calls it from one goroutine.
type sweepDriver struct {
	storagedriver.StorageDriver
	pending      map[digest.Digest]bool
	blobsDeleted int
}

// Delete implements storagedriver.StorageDriver.
func (d *sweepDriver) Delete(ctx context.Context, path string) error {
	for _, part := range strings.Split(path, "/") {
		if len(part) == 64 && d.pending[digest.NewDigestFromEncoded(digest.SHA256, part)] {
			return nil
		}
	}
	if err := d.StorageDriver.Delete(ctx, path); err != nil {
		return err
	}
	if strings.HasPrefix(path, blobsRoot) {
		d.blobsDeleted++
	}
	return nil
}

// purgeUploads removes uploads (repositories/<name>/_uploads/<id>) in which
// nothing was written since before cutoff. distribution's own purger is off
// (see distConfig). Runs under the gate, so no upload is being written.
func purgeUploads(dir string, cutoff time.Time) (int, error) {
	root := filepath.Join(dir, "docker", "registry", "v2", "repositories")
	n := 0
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() || e.Name() != "_uploads" {
			return nil
		}
		uploads, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, u := range uploads {
			p := filepath.Join(path, u.Name())
			newest, err := newestModTime(p)
			if err != nil {
				return err
			}
			if newest.Before(cutoff) {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
				n++
			}
		}
		return fs.SkipDir
	})
	if err != nil {
		return n, fmt.Errorf("registry: purge uploads: %w", err)
	}
	return n, nil
}

func newestModTime(path string) (time.Time, error) {
	var newest time.Time
	err := filepath.WalkDir(path, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		return nil
	})
	return newest, err
}
