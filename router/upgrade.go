package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
)

// serveUpgrade finishes a protocol switch (WebSocket): the 101 goes to the
// client, then bytes are pumped both ways until either side closes or the
// App stops. The connection counts as in flight on its upstream meanwhile.
func (a *App) serveUpgrade(w http.ResponseWriter, r *http.Request, resp upResponse, c *upConn, reqID, upgrade string) (outcome, int, int64) {
	if len(resp.upgrade) != len(upgrade) || !asciiEqualFold(resp.upgrade, upgrade) {
		return attemptFailed, 0, 0
	}
	h := w.Header() // the upstream's 101 headers, parsed into it
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = []string{upgrade}
	h["X-Request-Id"] = []string{reqID}
	clientConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return attemptFailed, 0, 0
	}
	defer clientConn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return attemptClientGone, http.StatusSwitchingProtocols, 0
	}

	if !a.trackUpgrade(clientConn, c.nc, true) {
		return attemptDone, http.StatusSwitchingProtocols, 0 // the App is stopping
	}
	defer a.trackUpgrade(clientConn, c.nc, false)

	// Either direction ending ends both: close both connections so the
	// other copy returns too.
	var once sync.Once
	done := func() { once.Do(func() { clientConn.Close(); c.nc.Close() }) }
	var n int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done()
		pump(c.nc, brw.Reader) // client → upstream, including bytes already buffered
	}()
	n = pump(clientConn, c.br) // upstream → client
	done()
	wg.Wait()
	return attemptDone, http.StatusSwitchingProtocols, n
}

func pump(dst net.Conn, src *bufio.Reader) int64 {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	n, _ := io.CopyBuffer(dst, src, *bp)
	return n
}

func asciiEqualFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
