package router

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// upstream is the router's live state for one backend address. It outlives
// tables: a new table reuses the upstream of an address the old one had, so
// passive-health marks, in-flight counts and warm keep-alive connections
// survive a swap. An upstream that leaves the table is retired: its idle
// connections close and connections in use close when their request ends.
type upstream struct {
	addr string

	inflight  atomic.Int64 // requests (and open upgraded connections) now
	downUntil atomic.Int64 // monotonic nanos; passive health skips it until then
	retired   atomic.Bool

	pool *connPool
}

func newUpstream(addr string, cfg *proxyConfig) *upstream {
	u := &upstream{addr: addr}
	u.pool = &connPool{u: u, cfg: cfg}
	return u
}

// healthy is false while a recent connection failure marks the upstream.
func (u *upstream) healthy(now int64) bool { return u.downUntil.Load() <= now }

func (u *upstream) markDown(now int64, d time.Duration) { u.downUntil.Store(now + int64(d)) }

func (u *upstream) retire() {
	u.retired.Store(true)
	u.pool.closeIdle()
}

// monoStart anchors monotonic time; only differences matter.
var monoStart = time.Now()

// nanotime is a monotonic clock in nanoseconds, cheap enough for every request.
func nanotime() int64 { return int64(time.Since(monoStart)) }

// upConn is one keep-alive connection to an upstream with its buffers.
type upConn struct {
	nc           net.Conn
	br           *bufio.Reader
	bw           *bufio.Writer // writes to w
	w            upWriter
	idleAt       int64 // nanotime when it went back to the pool
	readDeadline int64 // nanotime of the read deadline set on nc (see armRead)
	reused       bool  // taken from the pool rather than freshly dialled
}

// upWriter is what an upConn's bufio.Writer writes to: the connection,
// or, with awaitReply set, the connection from inside a RawConn.Read that
// then waits until the response can be read. A plain write followed by a
// read costs a read syscall that finds nothing yet (EAGAIN) before Go's
// poller waits; this way the wait comes straight after the write.
//
// That is sound because RawConn.Read resets the poller's readiness before
// it first calls back (the write happens after the reset, so the response
// arriving after it is a new readiness edge that wakes the wait). What it
// gives up is noticing bytes or a FIN that arrived while the connection
// sat idle in the pool before the reset: those are picked up when the
// app's RST answers the request (a closed socket resets), or by the read
// timeout (without one, upConns write plainly). Connections idle more
// than a second were peeked at before use.
type upWriter struct {
	nc         net.Conn
	raw        syscall.RawConn // nil: plain writes only
	awaitReply bool
	await      func(fd uintptr) bool // writeThenWait, bound once (no closure per request)
	pending    []byte
	sent       int
	called     bool
	writeErr   error
}

func (w *upWriter) Write(p []byte) (int, error) {
	if !w.awaitReply || w.raw == nil {
		return w.nc.Write(p)
	}
	w.awaitReply = false
	w.pending, w.sent, w.called, w.writeErr = p, 0, false, nil
	w.raw.Read(w.await) // its error (a deadline, a close) is the next read's too
	sent, werr := w.sent, w.writeErr
	w.pending, w.writeErr = nil, nil
	if werr != nil {
		return sent, &net.OpError{Op: "write", Net: "tcp", Addr: w.nc.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
	}
	if sent < len(p) { // the socket buffer was full, or RawConn.Read failed before calling back
		n, err := w.nc.Write(p[sent:])
		return sent + n, err
	}
	return sent, nil
}

// writeThenWait is the RawConn.Read callback of upWriter.Write: the first
// call writes, the next ones (after the poller saw the connection
// readable, or a deadline) end the wait.
func (w *upWriter) writeThenWait(fd uintptr) bool {
	if w.called {
		return true
	}
	w.called = true
	for w.sent < len(w.pending) {
		n, err := syscall.Write(int(fd), w.pending[w.sent:])
		if n > 0 {
			w.sent += n
		}
		switch {
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			return true // the rest goes out with a blocking write; no wait here
		case err != nil:
			w.writeErr = err
			return true
		}
	}
	return false
}

// connPool keeps idle connections to one upstream, newest first (LIFO keeps
// the hot connections hot and lets the idle tail age out).
type connPool struct {
	u   *upstream
	cfg *proxyConfig

	mu   sync.Mutex
	idle []*upConn
}

var errUpstreamRetired = errors.New("upstream left the route table")

// get returns an idle connection that still looks alive, or dials one.
// check forces the liveness peek, for requests whose body cannot be
// replayed on another connection.
func (p *connPool) get(ctx context.Context, now int64, check bool) (*upConn, error) {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := time.Duration(now - c.idleAt)
		if idle > p.cfg.idleConnTimeout {
			c.nc.Close()
			continue
		}
		// A connection idle for a while may have been closed by the app
		// (Node closes after 5 s); peek at it before trusting it. Busy
		// connections skip the syscall.
		if (check || idle > time.Second) && !alive(c.nc) {
			c.nc.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
	return p.dial(ctx)
}

func (p *connPool) dial(ctx context.Context) (*upConn, error) {
	d := net.Dialer{Timeout: p.cfg.dialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", p.u.addr)
	if err != nil {
		return nil, err
	}
	c := &upConn{nc: nc, br: bufio.NewReaderSize(nc, 4096)}
	c.w.nc = nc
	if sc, ok := nc.(syscall.Conn); ok && p.cfg.readTimeout > 0 {
		if raw, err := sc.SyscallConn(); err == nil {
			c.w.raw = raw
			c.w.await = c.w.writeThenWait
		}
	}
	c.bw = bufio.NewWriterSize(&c.w, 4096)
	return c, nil
}

// put returns a connection to the pool, or closes it when the pool is full
// or the upstream has been retired.
func (p *connPool) put(c *upConn) {
	if p.u.retired.Load() {
		c.nc.Close()
		return
	}
	c.idleAt = nanotime()
	p.mu.Lock()
	if len(p.idle) >= p.cfg.maxIdlePerUpstream {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	if p.u.retired.Load() { // retired between the check and the append
		p.closeIdle()
	}
}

func (p *connPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

func (p *connPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// alive peeks at an idle connection without blocking: EOF or an error means
// the peer closed it; EAGAIN means it is quiet and usable.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = true
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0: // unsolicited bytes: the connection is out of sync
			ok = false
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		default: // n == 0 is EOF, or a real error
			ok = false
		}
		return true
	})
	return ok && err == nil
}
