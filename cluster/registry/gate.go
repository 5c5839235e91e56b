package registry

import (
	"context"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// A push is many requests: for each blob HEAD (is it there?), then POST,
// PATCH…, PUT (upload) or POST ?mount= (link from another repository); last
// PUT of the manifest that references them. Two things keep Collect from
// breaking one:
//
//   - Every request but GET holds one unit of gate while it runs; Collect
//     takes all of it. So no upload, mount, HEAD or manifest PUT runs during a
//     collection: they wait for it to finish, and it waits for those in flight.
//   - Between the requests of a push, the blobs it has uploaded, mounted or
//     found present are referenced by no manifest yet; mark-and-sweep would
//     delete them and the final manifest PUT would fail. pending records those
//     digests (and manifests pushed by digest, the children of an index) until
//     a manifest that references them is stored or pendingTTL passes; Collect
//     deletes none of them.
//
// GETs are never held: pulls go on during a collection, and only what is
// being deleted can fail to pull.
const (
	gateWeight = 1 << 40
	pendingTTL = time.Hour
	// maxPending bounds the set between Collects: past it, adding an entry
	// first drops the expired ones (abandoned pushes).
	maxPending = 4096
)

var (
	blobPath     = regexp.MustCompile(`^/v2/(.+)/blobs/([a-z0-9]+:[a-zA-Z0-9=_-]+)$`)
	uploadPath   = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/`)
	manifestPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
)

// pendingSet is the set of digests a push in progress still needs.
type pendingSet struct {
	mu sync.Mutex
	at map[digest.Digest]time.Time
}

func (p *pendingSet) add(now time.Time, ds ...digest.Digest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.at == nil {
		p.at = map[digest.Digest]time.Time{}
	}
	if len(p.at) > maxPending {
		p.expire(now)
	}
	for _, d := range ds {
		if d.Validate() == nil {
			p.at[d] = now
		}
	}
}

func (p *pendingSet) remove(ds ...digest.Digest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range ds {
		delete(p.at, d)
	}
}

// expire forgets entries older than pendingTTL. p.mu must be held.
func (p *pendingSet) expire(now time.Time) {
	for d, t := range p.at {
		if now.Sub(t) > pendingTTL {
			delete(p.at, d)
		}
	}
}

// live forgets entries older than pendingTTL and returns a copy of the rest.
func (p *pendingSet) live(now time.Time) map[digest.Digest]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expire(now)
	out := make(map[digest.Digest]bool, len(p.at))
	for d := range p.at {
		out[d] = true
	}
	return out
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes a flush on, for distribution's response writer, which looks
// for http.Flusher.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveHTTP is the Registry's handler: distribution's app behind the gate,
// with the Registry's logger in every request's context.
func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	req = req.WithContext(logContext{Context: req.Context(), entry: r.logEntry})
	if req.Method == http.MethodGet {
		// Pulls are never held, and keep the connection's ReaderFrom
		// (sendfile) for blobs.
		r.app.ServeHTTP(w, req)
		return
	}
	if err := r.gate.Acquire(req.Context(), 1); err != nil {
		http.Error(w, "registry: request canceled while waiting for garbage collection", http.StatusServiceUnavailable)
		return
	}
	defer r.gate.Release(1)

	sw := &statusWriter{ResponseWriter: w}
	r.app.ServeHTTP(sw, req)
	r.track(req, sw)
}

// track updates the pending set after a successful request of a push.
func (r *Registry) track(req *http.Request, w *statusWriter) {
	now := time.Now()
	path := req.URL.Path
	switch {
	case req.Method == http.MethodHead && w.status == http.StatusOK:
		if m := blobPath.FindStringSubmatch(path); m != nil {
			r.pending.add(now, digest.Digest(m[2]))
		}
	case (req.Method == http.MethodPut || req.Method == http.MethodPost) && w.status == http.StatusCreated && uploadPath.MatchString(path):
		// PUT …/uploads/<id>?digest= ends an upload; POST …/uploads/?mount=
		// links a blob; POST …/uploads/?digest= is a monolithic upload.
		q := req.URL.Query()
		r.pending.add(now, digest.Digest(q.Get("digest")), digest.Digest(q.Get("mount")))
	case req.Method == http.MethodPut && w.status == http.StatusCreated:
		m := manifestPath.FindStringSubmatch(path)
		if m == nil {
			return
		}
		dgst, err := digest.Parse(w.Header().Get("Docker-Content-Digest"))
		if err != nil {
			return
		}
		if _, err := digest.Parse(m[2]); err == nil {
			// Pushed by digest, untagged: the child of an index on its way.
			r.pending.add(now, dgst)
		}
		r.pending.remove(r.references(req.Context(), m[1], dgst)...)
	}
}

// references lists what the manifest dgst in repo refers to, or nothing if
// it cannot be read (the entries then expire after pendingTTL).
func (r *Registry) references(ctx context.Context, repo string, dgst digest.Digest) []digest.Digest {
	named, err := reference.WithName(repo)
	if err != nil {
		return nil
	}
	ctx = r.logCtx(ctx)
	rp, err := r.ns.Repository(ctx, named)
	if err != nil {
		return nil
	}
	ms, err := rp.Manifests(ctx)
	if err != nil {
		return nil
	}
	m, err := ms.Get(ctx, dgst)
	if err != nil {
		return nil
	}
	var out []digest.Digest
	for _, d := range m.References() {
		out = append(out, d.Digest)
	}
	return out
}
