package router

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// proxyConfig holds the proxy's tunables, fixed when the App is provisioned.
type proxyConfig struct {
	dialTimeout        time.Duration
	tryDuration        time.Duration
	failDuration       time.Duration
	readTimeout        time.Duration
	idleConnTimeout    time.Duration
	maxIdlePerUpstream int
	trustedProxies     []netip.Prefix
}

func defaultProxyConfig() *proxyConfig {
	return &proxyConfig{
		dialTimeout:        2 * time.Second,
		tryDuration:        3 * time.Second,
		failDuration:       5 * time.Second,
		readTimeout:        60 * time.Second,
		idleConnTimeout:    60 * time.Second,
		maxIdlePerUpstream: 1024,
	}
}

// upstreamAborter is implemented by the lean frontend's ResponseWriter,
// which watches for client hang-ups itself and aborts the upstream
// connection registered here.
type upstreamAborter interface {
	setUpstream(nc net.Conn) (clientGone bool)
}

// connScratch is memory of the lean frontend's client connection that
// the proxy uses for strings living no longer than one request: the
// upstream's response head (the response header's keys and values are
// views of it) and the generated request ID. The lean frontend writes a
// response head out as soon as the handler calls WriteHeader, so nothing
// reads these strings once the next request of the connection reuses the
// memory. Other ResponseWriters (net/http's) may write the head later;
// for them the proxy allocates.
type connScratch struct {
	respHead []byte
	vals     []string
	reqID    [32]byte
}

// scratchOwner is implemented by the lean frontend's ResponseWriter.
type scratchOwner interface {
	scratch() *connScratch
}

func scratchOf(w http.ResponseWriter) *connScratch {
	if so, ok := w.(scratchOwner); ok {
		return so.scratch()
	}
	return nil
}

// outcome of one attempt at one upstream.
type outcome int

const (
	attemptDone       outcome = iota // a response (or an abort) went to the client
	attemptRetry                     // nothing reached the client; another upstream may serve it
	attemptRetrySame                 // a reused keep-alive connection was stale; dial afresh
	attemptFailed                    // nothing reached the client and it cannot be retried
	attemptTimeout                   // the upstream did not answer in time
	attemptClientGone                // the client went away
)

// result of proxying one request, for metrics and the access log.
type result struct {
	status   int
	upstream *upstream
	bytes    int64
	upErrors int // connection-level upstream failures seen (retried or not)
}

var (
	aLongTimeAgo = time.Unix(1, 0)
	copyBufPool  = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
)

// proxy sends r to one of rt's upstreams, retrying connection failures on
// other upstreams (re-reading the table, which may have cut over) until one
// answers or the try duration runs out.
func (a *App) proxy(ctx context.Context, w http.ResponseWriter, r *http.Request, rt *route, reqID string, start int64) result {
	cfg := a.proxyCfg
	var res result
	var triedBuf [4]*upstream
	tried := triedBuf[:0]
	// Only a request without a body can be sent again; server requests say
	// so with ContentLength (0: none, -1: chunked or unknown). Caddy wraps
	// r.Body even when it is empty, so the Body itself tells nothing.
	replayable := r.ContentLength == 0
	deadline := start + int64(cfg.tryDuration)
	for {
		now := start
		if len(tried) > 0 {
			now = nanotime()
		}
		u := rt.pick(now, tried)
		if u == nil {
			res.status = http.StatusServiceUnavailable
			writePage(w, res.status, pageUnavailable)
			return res
		}
		res.upstream = u
		oc, status, n := a.attempt(ctx, w, r, u, reqID, replayable, now)
		if oc == attemptRetrySame {
			oc, status, n = a.attempt(ctx, w, r, u, reqID, replayable, nanotime())
		}
		res.status, res.bytes = status, n
		switch oc {
		case attemptDone, attemptClientGone:
			return res
		case attemptTimeout:
			res.upErrors++
			res.status = http.StatusGatewayTimeout
			clear(w.Header()) // drop whatever part of a response head was parsed
			writePage(w, res.status, pageTimeout)
			return res
		case attemptFailed:
			res.upErrors++
			u.markDown(nanotime(), cfg.failDuration)
			res.status = http.StatusBadGateway
			clear(w.Header())
			writePage(w, res.status, pageBadGateway)
			return res
		}
		// attemptRetry: the upstream refused or dropped the connection
		// before anything reached the client.
		res.upErrors++
		u.markDown(nanotime(), cfg.failDuration)
		tried = append(tried, u)
		if nanotime() > deadline {
			res.status = http.StatusServiceUnavailable
			writePage(w, res.status, pageUnavailable)
			return res
		}
		// A cutover may have happened since this request started: retry
		// against the app's current upstreams.
		if cur := a.table.Load(); cur != nil {
			if nrt := cur.apps[rt.App]; nrt != nil {
				rt = nrt
			}
		}
	}
}

// attempt is one round trip to u on a pooled connection.
func (a *App) attempt(ctx context.Context, w http.ResponseWriter, r *http.Request, u *upstream, reqID string, replayable bool, now int64) (outcome, int, int64) {
	u.inflight.Add(1)
	defer u.inflight.Add(-1)

	upgrade := upgradeType(r.Header)
	var c *upConn
	var err error
	if upgrade != "" {
		c, err = u.pool.dial(ctx) // upgraded connections are never pooled
	} else {
		c, err = u.pool.get(ctx, now, !replayable)
	}
	if err != nil {
		if ctx.Err() != nil {
			return attemptClientGone, 499, 0
		}
		return attemptRetry, 0, 0
	}
	keep := false
	defer func() {
		if keep {
			u.pool.put(c)
		} else {
			c.nc.Close()
		}
	}()

	// Abort the upstream I/O when the client goes away.
	if ua, ok := w.(upstreamAborter); ok {
		if ua.setUpstream(c.nc) {
			return attemptClientGone, 499, 0
		}
		defer func() {
			if ua.setUpstream(nil) && keep {
				keep = false // the deadline is poisoned
				c.nc.Close()
			}
		}()
	} else {
		stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })
		defer func() {
			if !stop() && keep {
				keep = false
				c.nc.Close()
			}
		}()
	}

	a.writeRequestHead(c.bw, r, reqID, upgrade)
	hasBody := !replayable
	var bodyDone chan error
	if hasBody {
		bodyDone = make(chan error, 1)
		go func() { bodyDone <- writeBody(c.bw, r) }()
	} else {
		// One write, then the wait for the response (upWriter).
		c.armRead(now, a.proxyCfg.readTimeout)
		c.w.awaitReply = true
		err := c.bw.Flush()
		c.w.awaitReply = false
		if err != nil {
			return a.failedBeforeResponse(ctx, c, replayable)
		}
	}
	abandon := func() {
		if hasBody {
			c.nc.Close()
			<-bodyDone
		}
	}

	c.armRead(now, a.proxyCfg.readTimeout)
	if _, err := c.br.Peek(1); err != nil {
		abandon()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return attemptTimeout, 0, 0
		}
		return a.failedBeforeResponse(ctx, c, replayable)
	}
	h := w.Header()
	scratch := scratchOf(w)
	var resp upResponse
	for {
		resp, err = readHead(c.br, r.Method, h, reqID, scratch)
		if err != nil || resp.status/100 != 1 || resp.status == http.StatusSwitchingProtocols {
			break
		}
		// An interim response: forward Early Hints, skip the rest (the
		// router answered the client's Expect: 100-continue itself).
		c.armRead(nanotime(), a.proxyCfg.readTimeout)
	}
	if err != nil {
		abandon()
		if ctx.Err() != nil {
			return attemptClientGone, 499, 0
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return attemptTimeout, 0, 0
		}
		return attemptFailed, 0, 0
	}

	if resp.status == http.StatusSwitchingProtocols {
		if hasBody || upgrade == "" {
			abandon()
			return attemptFailed, 0, 0
		}
		c.nc.SetReadDeadline(time.Time{})
		return a.serveUpgrade(w, r, resp, c, reqID, upgrade)
	}

	w.WriteHeader(resp.status)

	var body bodyReader
	body.reset(c.br, resp)
	n, rerr, werr := copyBody(w, &body, resp.contentLength < 0, c, a.proxyCfg.readTimeout)
	if werr != nil || rerr != nil {
		abandon()
		if werr != nil || ctx.Err() != nil {
			return attemptClientGone, resp.status, n
		}
		// The upstream broke off mid-response: make sure the client sees
		// a broken response, not a truncated one that looks complete.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range body.trailer {
		h[http.TrailerPrefix+k] = vv
	}
	keep = !resp.close && resp.slowBody == nil
	if hasBody {
		select {
		case err := <-bodyDone:
			keep = keep && err == nil
		default:
			// The app answered before reading the whole body; this
			// connection is out of step now.
			keep = false
			abandon()
		}
	}
	return attemptDone, resp.status, n
}

// armRead sets the upstream read deadline lazily: only when less than half
// of timeout is left, so a busy connection pays for it once per timeout/2,
// not per request. The effect is nginx's proxy_read_timeout: a read that
// waits longer than timeout (at least timeout/2) fails.
func (c *upConn) armRead(now int64, timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	if c.readDeadline-now > int64(timeout/2) {
		return
	}
	c.readDeadline = now + int64(timeout)
	c.nc.SetReadDeadline(time.Now().Add(timeout))
}

// failedBeforeResponse classifies an error that happened before any
// response byte arrived.
func (a *App) failedBeforeResponse(ctx context.Context, c *upConn, replayable bool) (outcome, int, int64) {
	switch {
	case ctx.Err() != nil:
		return attemptClientGone, 499, 0
	case !replayable:
		return attemptFailed, 0, 0
	case c.reused:
		// The app closed an idle keep-alive connection as we used it.
		return attemptRetrySame, 0, 0
	default:
		return attemptRetry, 0, 0
	}
}

// copyBody streams the response body to the client, flushing as it goes
// when the body has no declared length (streams, server-sent events).
func copyBody(w http.ResponseWriter, body *bodyReader, flush bool, c *upConn, readTimeout time.Duration) (n int64, rerr, werr error) {
	if body.mode == bodyFixed && body.left <= int64(body.br.Buffered()) {
		// The whole body came with the head (small responses): straight
		// from the connection's buffer, no copy buffer, no read.
		if body.left == 0 {
			return 0, nil, nil
		}
		data, _ := body.br.Peek(int(body.left))
		nw, err := w.Write(data)
		body.br.Discard(nw)
		body.left -= int64(nw)
		return int64(nw), nil, err
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
	}
	for {
		c.armRead(nanotime(), readTimeout)
		nr, err := body.Read(buf)
		if nr > 0 {
			nw, err := w.Write(buf[:nr])
			n += int64(nw)
			if err != nil {
				return n, nil, err
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return n, nil, err
				}
			}
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// writeRequestHead writes the request line and headers for the upstream:
// hop-by-hop headers dropped, X-Forwarded-* and X-Request-ID set.
func (a *App) writeRequestHead(bw *bufio.Writer, r *http.Request, reqID, upgrade string) {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' && uri != "*" {
		uri = r.URL.RequestURI()
	}
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")

	// Headers named in Connection are hop-by-hop too; names are compared
	// ignoring case rather than canonicalised (no allocation).
	var droppedBuf [8]string
	dropped := droppedBuf[:0]
	for _, v := range r.Header["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			tok = trimOWS(tok)
			if tok != "" {
				dropped = append(dropped, tok)
			}
		}
	}
	for k, vv := range r.Header {
		if hopHeader(k) || isForwardHeader(k) {
			continue
		}
		if len(dropped) > 0 && containsFold(dropped, k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if te := r.Header["Te"]; len(te) > 0 && strings.Contains(strings.ToLower(strings.Join(te, ",")), "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	switch {
	case upgrade != "":
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.WriteString(upgrade)
		bw.WriteString("\r\n")
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), r.ContentLength, 10))
		bw.WriteString("\r\n")
	case r.ContentLength < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}

	// X-Forwarded-*: trust what came in only from a trusted proxy.
	clientIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		clientIP = ""
	}
	trusted := a.trusted(clientIP)
	bw.WriteString("X-Forwarded-For: ")
	if prior := r.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
		for _, p := range prior {
			bw.WriteString(p)
			bw.WriteString(", ")
		}
	}
	bw.WriteString(clientIP)
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	if prior := r.Header["X-Forwarded-Proto"]; trusted && len(prior) > 0 && prior[0] != "" {
		bw.WriteString(prior[0])
	} else if r.TLS != nil {
		bw.WriteString("https")
	} else {
		bw.WriteString("http")
	}
	bw.WriteString("\r\nX-Forwarded-Host: ")
	if prior := r.Header["X-Forwarded-Host"]; trusted && len(prior) > 0 && prior[0] != "" {
		bw.WriteString(prior[0])
	} else {
		bw.WriteString(r.Host)
	}
	bw.WriteString("\r\nX-Request-Id: ")
	bw.WriteString(reqID)
	bw.WriteString("\r\n\r\n")
}

func (a *App) trusted(clientIP string) bool {
	if len(a.proxyCfg.trustedProxies) == 0 || clientIP == "" {
		return false
	}
	ip, err := netip.ParseAddr(clientIP)
	if err != nil {
		return false
	}
	for _, p := range a.proxyCfg.trustedProxies {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

// writeBody streams the request body after the head, chunked when its
// length is unknown.
func writeBody(bw *bufio.Writer, r *http.Request) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	var err error
	if r.ContentLength > 0 {
		_, err = io.CopyBuffer(bw, io.LimitReader(r.Body, r.ContentLength), *bp)
	} else {
		cw := httputil.NewChunkedWriter(bw)
		if _, err = io.CopyBuffer(cw, r.Body, *bp); err == nil {
			if err = cw.Close(); err == nil {
				_, err = bw.WriteString("\r\n")
			}
		}
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// copyResponseHeader copies upstream headers to the client, without the
// hop-by-hop ones. Values are shared, not copied: resp is discarded after.
func copyResponseHeader(dst, src http.Header) {
	var dropped []string
	for _, v := range src["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				dropped = append(dropped, http.CanonicalHeaderKey(tok))
			}
		}
	}
	for k, vv := range src {
		if hopHeader(k) || len(dropped) > 0 && contains(dropped, k) {
			continue
		}
		dst[k] = vv
	}
}

// hopHeader reports the hop-by-hop headers of RFC 9110 §7.6.1 (and the
// ones we always set ourselves: Host, Content-Length, Expect).
func hopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Host", "Content-Length", "Expect":
		return true
	}
	return false
}

func isForwardHeader(k string) bool {
	switch k {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id":
		return true
	}
	return false
}

func containsFold(list []string, k string) bool {
	for _, s := range list {
		if asciiEqualFoldLen(s, k) {
			return true
		}
	}
	return false
}

func contains(list []string, k string) bool {
	for _, s := range list {
		if s == k {
			return true
		}
	}
	return false
}

// upgradeType returns the protocol of an Upgrade request (websocket), or "".
func upgradeType(h http.Header) string {
	up := h["Upgrade"]
	if len(up) == 0 {
		return ""
	}
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return up[0]
			}
		}
	}
	return ""
}

// requestID keeps a sane incoming X-Request-ID and makes one otherwise:
// 128 random bits in hex. With scratch (the lean frontend's) the ID is
// formatted into it and valid for the request only; otherwise it is a
// new string.
func requestID(r *http.Request, scratch *connScratch) string {
	if v := r.Header["X-Request-Id"]; len(v) == 1 && validRequestID(v[0]) {
		return v[0]
	}
	if scratch != nil {
		formatRequestID(&scratch.reqID)
		return unsafeString(scratch.reqID[:])
	}
	var b [32]byte
	formatRequestID(&b)
	return string(b[:])
}

func formatRequestID(b *[32]byte) {
	const hexdigits = "0123456789abcdef"
	x, y := rand.Uint64(), rand.Uint64()
	for i := range 16 {
		b[i] = hexdigits[x>>(60-4*i)&0xf]
		b[16+i] = hexdigits[y>>(60-4*i)&0xf]
	}
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
