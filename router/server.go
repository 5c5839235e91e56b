package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RouterGCPercent is the GC target TuneRuntime sets: the router's live
// heap is small (the table: about 550 bytes per app) and each request
// leaves a few hundred bytes of garbage, so at Go's default of 100 a busy
// router collects several times a second for almost nothing; 400 collects
// a quarter as often for a heap that stays in the tens of MiB even with
// 10,000 apps. Measured end to end on the shared 2-vCPU machine the effect
// is within the noise (+2 % in one run, -6 % in another; DESIGN.md).
const RouterGCPercent = 400

// TuneRuntime applies the Go runtime settings measured best for a process
// whose main work is the router (the berth router command calls it from
// main): the GC target RouterGCPercent, unless GOGC is set in the
// environment. GOMAXPROCS is left at Go's default (the CPUs the process
// may use): GOMAXPROCS=1 measured worse on two vCPUs (0.86 of nginx
// against 0.99 at the default, same run). A memory limit
// (GOMEMLIMIT) is the operator's choice; the runtime reads it itself.
func TuneRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(RouterGCPercent)
	}
}

// frontend is the lean frontend: an HTTP/1.1 server of berth's own in
// front of the lean proxy. net/http's server costs a goroutine, a read
// syscall, a deadline dance and a context per request to watch for the
// client hanging up (see DESIGN.md for the measurements); here each
// connection is one goroutine running request after request. Heads are
// parsed by parse.go (what net/http's server accepts, minus a few
// smuggling-prone forms), into a Request reused by the connection.
// Responses are written by rawWriter.
// TLS and HTTP/2 belong to the Caddy frontend.
type frontend struct {
	app               *App
	ln                net.Listener
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	logger            *slog.Logger

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	shutting bool
	stopping atomic.Bool    // shutting, readable without the lock
	wg       sync.WaitGroup // the accept loop and every connection
	done     chan struct{}  // closed by shutdown
}

// connection states
const (
	stateIdle   int32 = iota // between requests: shutdown may close it
	stateActive              // a request is being read or served
	stateClosed
)

func newFrontend(a *App, ln net.Listener) *frontend {
	f := &frontend{
		app:               a,
		ln:                ln,
		readHeaderTimeout: durOr(a.ReadHeaderTimeout, 10*time.Second),
		idleTimeout:       durOr(a.IdleTimeout, 2*time.Minute),
		maxHeaderBytes:    a.MaxHeaderBytes,
		logger:            a.logger,
		conns:             map[*serverConn]struct{}{},
		done:              make(chan struct{}),
	}
	if f.maxHeaderBytes <= 0 {
		f.maxHeaderBytes = 64 << 10
	}
	return f
}

func (f *frontend) start() {
	f.wg.Add(2)
	go func() {
		defer f.wg.Done()
		f.acceptLoop()
	}()
	go func() {
		defer f.wg.Done()
		f.watchSlowRequests()
	}()
}

func (f *frontend) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			select {
			case <-f.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				f.logger.Warn("berth router: accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			if !errors.Is(err, net.ErrClosed) {
				f.logger.Error("berth router: accept", "err", err)
			}
			return
		}
		backoff = 0
		sc := newServerConn(f, nc)
		f.mu.Lock()
		if f.shutting {
			f.mu.Unlock()
			nc.Close()
			continue
		}
		f.conns[sc] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			sc.serve()
		}()
	}
}

// shutdown stops accepting, closes idle connections at once and lets
// active ones finish their request until ctx ends, then closes the rest.
func (f *frontend) shutdown(ctx context.Context) {
	f.mu.Lock()
	f.shutting = true
	f.stopping.Store(true)
	f.mu.Unlock()
	close(f.done)
	f.ln.Close()
	for {
		f.mu.Lock()
		for sc := range f.conns {
			if sc.state.CompareAndSwap(stateIdle, stateClosed) {
				sc.nc.Close()
			}
		}
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			f.mu.Lock()
			for sc := range f.conns {
				sc.nc.Close()
			}
			f.mu.Unlock()
			f.wg.Wait()
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	f.wg.Wait()
}

// watchSlowRequests notices clients that hang up during a long request.
// net/http watches every request for that, at a price on each; here one
// goroutine looks every 250 ms, and only a request older than that gets a
// watcher.
func (f *frontend) watchSlowRequests() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		old := nanotime() - int64(250*time.Millisecond)
		f.mu.Lock()
		for sc := range f.conns {
			sc.maybeWatch(old)
		}
		f.mu.Unlock()
	}
}

// serverConn is one client connection.
type serverConn struct {
	f      *frontend
	nc     net.Conn
	remote string
	lr     limitReader
	br     *bufio.Reader
	bw     *bufio.Writer
	w      rawWriter

	state  atomic.Int32
	ctx    context.Context
	cancel context.CancelFunc // the client went away
	upNC   net.Conn           // the upstream connection of the request, under watchMu
	hungUp bool               // under watchMu

	// Watching a slow request's client for a hang-up (watchSlowRequests).
	watchMu   sync.Mutex
	watchFrom int64 // nanotime a watchable request began; 0: nothing to watch
	watching  bool
	watchDone chan struct{}

	idleDeadline int64 // nanotime of the read deadline set for idling

	// Reused from request to request: nothing keeps them after serveOne.
	parser  *requestParser
	headBuf []byte // the request head; the Request's strings are views of it
	expect  expectContinueBody
	scratch connScratch
}

// limitReader caps what the head of a request may read from the conn.
type limitReader struct {
	r      io.Reader
	remain int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.r.Read(p)
	l.remain -= int64(n)
	return n, err
}

var errHeadTooLarge = errors.New("request head too large")

const noLimit = 1 << 62

func newServerConn(f *frontend, nc net.Conn) *serverConn {
	sc := &serverConn{f: f, nc: nc, remote: nc.RemoteAddr().String()}
	sc.lr = limitReader{r: nc, remain: noLimit}
	sc.br = bufio.NewReaderSize(&sc.lr, 4096)
	sc.bw = bufio.NewWriterSize(nc, 4096)
	sc.w.sc = sc
	sc.w.header = make(http.Header, 16)
	sc.parser = newRequestParser()
	sc.ctx, sc.cancel = context.WithCancel(context.Background())
	return sc
}

func (sc *serverConn) serve() {
	hijacked := false
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			sc.f.logger.Error("berth router: panic serving a request", "remote", sc.remote, "err", err)
		}
		sc.stopWatching()
		sc.cancel()
		if !hijacked {
			sc.nc.Close()
		}
		sc.f.mu.Lock()
		delete(sc.f.conns, sc)
		sc.f.mu.Unlock()
	}()
	for first := true; ; first = false {
		if !sc.awaitRequest(first) {
			return
		}
		keep, hj := sc.serveOne()
		if hj {
			hijacked = true
			return
		}
		if !keep || sc.f.stopping.Load() || !sc.state.CompareAndSwap(stateActive, stateIdle) {
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request, closing the
// connection after IdleTimeout. Deadlines are set lazily: a busy
// connection re-arms the idle one only every IdleTimeout/2.
func (sc *serverConn) awaitRequest(first bool) bool {
	if sc.br.Buffered() == 0 {
		if err := sc.bw.Flush(); err != nil {
			return false
		}
		timeout := sc.f.idleTimeout
		if first {
			timeout = sc.f.readHeaderTimeout
		}
		if now := nanotime(); first || sc.idleDeadline-now < int64(timeout/2) {
			sc.idleDeadline = now + int64(timeout)
			sc.nc.SetReadDeadline(time.Now().Add(timeout))
		}
		if _, err := sc.br.Peek(1); err != nil {
			return false
		}
	}
	return sc.state.CompareAndSwap(stateIdle, stateActive)
}

// serveOne reads and answers one request. keep says whether the
// connection can carry another; hijacked that it is no longer ours.
func (sc *serverConn) serveOne() (keep, hijacked bool) {
	// The head must arrive within ReadHeaderTimeout (slowloris) and fit
	// in MaxHeaderBytes. Most heads are already buffered whole; they skip
	// the deadline.
	buffered, _ := sc.br.Peek(sc.br.Buffered())
	end := headEnd(buffered)
	headBuffered := end >= 0
	var head string
	var err error
	if headBuffered {
		head = takeHead(sc.br, &sc.headBuf, end)
	} else {
		sc.nc.SetReadDeadline(time.Now().Add(sc.f.readHeaderTimeout))
		sc.idleDeadline = 0
		sc.lr.remain = int64(sc.f.maxHeaderBytes) + 4096 - int64(len(buffered))
		head, err = readRequestHead(sc.br, &sc.headBuf, sc.f.maxHeaderBytes+4096)
		sc.lr.remain = noLimit
	}
	var req *http.Request
	if err == nil {
		req, err = sc.parser.parse(head, sc.br)
	}
	if err != nil {
		sc.badRequest(err)
		return false, false
	}
	if !headBuffered {
		sc.nc.SetReadDeadline(time.Time{})
	}
	req.RemoteAddr = sc.remote

	var body *expectContinueBody
	if req.ContentLength != 0 {
		// A body may take long to arrive; only the idle deadline was set.
		if headBuffered {
			sc.nc.SetReadDeadline(time.Time{})
			sc.idleDeadline = 0
		}
		if v := req.Header["Expect"]; len(v) > 0 {
			if !strings.EqualFold(v[0], "100-continue") || len(v) > 1 {
				sc.writeError(http.StatusExpectationFailed, "unsupported Expect header")
				return false, false
			}
			body = &sc.expect
			*body = expectContinueBody{ReadCloser: req.Body, sc: sc}
			req.Body = body
		}
	}
	start := nanotime()
	if req.ContentLength == 0 && len(req.Header["Upgrade"]) == 0 {
		// Nothing more to read from the client until the response is
		// out: a hang-up may be watched for.
		sc.watchMu.Lock()
		sc.watchFrom = start
		sc.watchMu.Unlock()
	}

	w := &sc.w
	w.reset(req)
	sc.f.app.serve(sc.ctx, w, req, start)

	sc.stopWatching()
	if w.hijacked {
		return false, true
	}
	// An odd big head or response head should not pin its memory for the
	// connection's life.
	if cap(sc.headBuf) > 16<<10 {
		sc.headBuf = nil
	}
	if cap(sc.scratch.respHead) > 16<<10 {
		sc.scratch.respHead = nil
	}
	w.finish()
	keep = !w.closeAfter && !req.Close && sc.ctx.Err() == nil
	// Whatever the handler left of the body must go before the next
	// request can be read; a lot of it is not worth reading.
	if req.ContentLength != 0 && keep {
		if body != nil && !body.sent {
			keep = false // the client still waits to be told to send it
		} else if n, _ := io.CopyN(io.Discard, req.Body, 256<<10); n >= 256<<10 {
			sc.lingerClose() // the client is still sending
			return false, false
		}
	}
	if !keep {
		sc.bw.Flush()
	}
	return keep, false
}

func validHostHeader(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"<>\^`+"`"+`{|}/`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// badRequest answers a request that could not be read, as net/http would.
func (sc *serverConn) badRequest(err error) {
	var ne net.Error
	var re *requestError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.As(err, &ne) && ne.Timeout():
		return // the client went away, or was too slow: just close
	case errors.Is(err, errHeadTooLarge):
		sc.writeError(http.StatusRequestHeaderFieldsTooLarge, "request header fields too large")
	case errors.As(err, &re):
		sc.writeError(re.status, re.msg)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return
	default:
		sc.writeError(http.StatusBadRequest, "malformed request")
	}
}

func (sc *serverConn) writeError(status int, msg string) {
	fmt.Fprintf(sc.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(msg)+1, msg+"\n")
	sc.lingerClose()
}

// lingerClose ends a connection whose client may still be sending (an
// oversize head, an unread body): closing with unread bytes makes the
// kernel send a reset that can destroy the response before the client
// reads it. So: flush, shut our side, discard what still comes for up to
// half a second (as net/http does), then close.
func (sc *serverConn) lingerClose() {
	sc.bw.Flush()
	if cw, ok := sc.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		sc.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.CopyN(io.Discard, sc.nc, 1<<20)
	}
}

// maybeWatch starts a watcher if the current request began before old and
// has nothing left to read from the client.
func (sc *serverConn) maybeWatch(old int64) {
	sc.watchMu.Lock()
	defer sc.watchMu.Unlock()
	if sc.watching || sc.watchFrom == 0 || sc.watchFrom > old {
		return
	}
	sc.watching = true
	sc.watchDone = make(chan struct{})
	sc.nc.SetReadDeadline(time.Time{}) // the lazy idle deadline would end the watch
	go sc.watchClient(sc.watchDone)
}

// watchClient reads from an idle client during a slow request: EOF means
// the client hung up, so the request's context is cancelled and the proxy
// stops waiting on the app. Bytes (a pipelined request) just stay buffered.
func (sc *serverConn) watchClient(done chan struct{}) {
	defer close(done)
	if _, err := sc.br.Peek(1); err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			sc.watchMu.Lock()
			sc.hungUp = true
			if sc.upNC != nil {
				sc.upNC.SetDeadline(aLongTimeAgo)
			}
			sc.watchMu.Unlock()
			sc.cancel()
		}
	}
}

// setUpstream implements upstreamAborter: the watcher aborts the
// upstream connection itself, so a request costs two uncontended locks
// instead of a context.AfterFunc.
func (w *rawWriter) setUpstream(nc net.Conn) (hungUp bool) {
	sc := w.sc
	sc.watchMu.Lock()
	defer sc.watchMu.Unlock()
	sc.upNC = nc
	return sc.hungUp
}

// stopWatching ends the watch before the connection's reader is used again.
func (sc *serverConn) stopWatching() {
	sc.watchMu.Lock()
	defer sc.watchMu.Unlock()
	sc.watchFrom = 0
	if !sc.watching {
		return
	}
	sc.nc.SetReadDeadline(aLongTimeAgo)
	<-sc.watchDone
	sc.nc.SetReadDeadline(time.Time{})
	sc.idleDeadline = 0
	sc.watching = false
}

// expectContinueBody sends "100 Continue" when the handler first reads.
type expectContinueBody struct {
	io.ReadCloser
	sc   *serverConn
	sent bool
}

func (b *expectContinueBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		b.sc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := b.sc.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return b.ReadCloser.Read(p)
}

// rawWriter is the http.ResponseWriter of the lean frontend: it writes the
// status line and headers straight into the connection's buffer, frames
// the body (Content-Length, chunked, or until close for HTTP/1.0) and
// flushes when the handler says or the buffer fills.
type rawWriter struct {
	sc      *serverConn
	req     *http.Request
	header  http.Header // reused from request to request
	status  int
	wrote   bool
	noBody  bool
	chunked bool
	length  int64 // declared Content-Length, -1 if none
	written int64

	closeAfter bool
	hijacked   bool
}

func (w *rawWriter) reset(req *http.Request) {
	clear(w.header)
	*w = rawWriter{sc: w.sc, req: req, header: w.header, length: -1}
	w.closeAfter = req.Close
}

// Header implements http.ResponseWriter.
func (w *rawWriter) Header() http.Header { return w.header }

// scratch implements scratchOwner: WriteHeader writes the head into the
// connection's buffer at once, so the proxy may give the header map views
// of memory the next request reuses.
func (w *rawWriter) scratch() *connScratch { return &w.sc.scratch }

// WriteHeader implements http.ResponseWriter.
func (w *rawWriter) WriteHeader(code int) {
	if w.wrote || w.hijacked {
		return
	}
	bw := w.sc.bw
	if code/100 == 1 && code != http.StatusSwitchingProtocols {
		writeStatusLine(bw, code)
		writeHeaders(bw, w.header)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.wrote, w.status = true, code
	h := w.header
	if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			w.length = n
		} else {
			delete(h, "Content-Length")
		}
	}
	switch {
	case w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified:
		w.noBody = true
	case w.length >= 0:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
		h["Transfer-Encoding"] = chunkedValue
	default:
		w.closeAfter = true // HTTP/1.0: the body ends at close
	}
	if code == http.StatusNoContent || code/100 == 1 {
		delete(h, "Content-Length")
		delete(h, "Transfer-Encoding")
	}
	if w.closeAfter {
		h["Connection"] = closeValue
	} else if !w.req.ProtoAtLeast(1, 1) {
		h["Connection"] = keepAliveValue
	}
	writeStatusLine(bw, code)
	writeHeaders(bw, h)
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	delete(h, "Transfer-Encoding")
	delete(h, "Connection")
}

var (
	chunkedValue   = []string{"chunked"}
	closeValue     = []string{"close"}
	keepAliveValue = []string{"keep-alive"}
)

// Write implements http.ResponseWriter.
func (w *rawWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody || len(p) == 0 {
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	bw := w.sc.bw
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	w.written += int64(n)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// FlushError sends what is buffered (http.ResponseController.Flush).
func (w *rawWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.sc.bw.Flush()
}

// Flush implements http.Flusher.
func (w *rawWriter) Flush() { w.FlushError() }

// EnableFullDuplex: the lean frontend always reads and writes independently.
func (w *rawWriter) EnableFullDuplex() error { return nil }

// Hijack hands the connection over (protocol upgrades).
func (w *rawWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.wrote {
		return nil, nil, errors.New("hijack after the response began")
	}
	w.sc.stopWatching()
	w.hijacked = true
	w.sc.nc.SetDeadline(time.Time{})
	return w.sc.nc, bufio.NewReadWriter(w.sc.br, w.sc.bw), nil
}

// finish ends the response: the last chunk and trailers, or the connection
// when a declared length was not met.
func (w *rawWriter) finish() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	bw := w.sc.bw
	switch {
	case w.chunked:
		bw.WriteString("0\r\n")
		for k, vv := range w.header {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
				for _, v := range vv {
					bw.WriteString(name)
					bw.WriteString(": ")
					bw.WriteString(v)
					bw.WriteString("\r\n")
				}
			}
		}
		bw.WriteString("\r\n")
	case !w.noBody && w.length >= 0 && w.written != w.length:
		w.closeAfter = true
	}
}

func writeStatusLine(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

func writeHeaders(bw *bufio.Writer, h http.Header) {
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

// httpDate is the Date header value, formatted once per second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.sec == now {
		return d.text
	}
	d := &cachedDate{sec: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	sec  int64
	text string
}

// dateCache is a cache, not state: any value is correct for its second.
var dateCache atomic.Pointer[cachedDate]
