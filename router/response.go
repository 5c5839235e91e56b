package router

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
)

// upResponse is an upstream response head. The common case is parsed
// without net/http's per-header allocations: the head becomes one string,
// keys and values are slices of it, and headers go straight into the
// client's header map, minus the hop-by-hop ones.
type upResponse struct {
	status        int
	contentLength int64 // -1: not declared
	chunked       bool
	close         bool   // the connection cannot be reused after this response
	noBody        bool   // HEAD, 1xx, 204, 304
	upgrade       string // the Upgrade header of a 101
	slowBody      io.ReadCloser
}

var errBadResponse = errors.New("malformed response from upstream")

// readHead parses a response head from br into h, adding X-Request-Id:
// reqID to a final response. Heads that do not fit in the connection's
// buffer go through net/http's parser instead. With scratch (the lean
// frontend's), the head is copied into it and h's keys and values are
// views of it, valid until the next readHead with the same scratch: the
// lean frontend writes them out before that. Without it (a ResponseWriter
// that may write the head later), the head becomes one string.
func readHead(br *bufio.Reader, method string, h http.Header, reqID string, scratch *connScratch) (upResponse, error) {
	var head []byte
	for {
		n := br.Buffered()
		if n == 0 {
			if _, err := br.Peek(1); err != nil {
				return upResponse{}, err
			}
			continue
		}
		data, _ := br.Peek(n)
		if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
			head = data[:i+2] // keep the last header line's CRLF
			break
		}
		if n >= br.Size() {
			return readHeadSlow(br, method, h, reqID)
		}
		if _, err := br.Peek(n + 1); err != nil { // wait for more bytes
			return upResponse{}, err
		}
	}
	var s string
	if scratch != nil {
		scratch.respHead = append(scratch.respHead[:0], head...)
		s = unsafeString(scratch.respHead)
	} else {
		s = string(head)
	}
	br.Discard(len(head) + 2)
	return parseHead(s, method, h, reqID, scratch)
}

func parseHead(s, method string, h http.Header, reqID string, scratch *connScratch) (upResponse, error) {
	line, rest, _ := strings.Cut(s, "\r\n")
	proto, status, ok := strings.Cut(line, " ")
	if !ok || len(status) < 3 || len(status) > 3 && status[3] != ' ' {
		return upResponse{}, fmt.Errorf("%w: status line %q", errBadResponse, line)
	}
	resp := upResponse{contentLength: -1}
	switch proto {
	case "HTTP/1.1":
	case "HTTP/1.0":
		resp.close = true // unless it says keep-alive
	default:
		return upResponse{}, fmt.Errorf("%w: protocol %q", errBadResponse, proto)
	}
	code, err := strconv.Atoi(status[:3])
	if err != nil || code < 100 {
		return upResponse{}, fmt.Errorf("%w: status %q", errBadResponse, status)
	}
	resp.status = code
	if code/100 == 1 && code != http.StatusSwitchingProtocols {
		h = http.Header{} // an interim response's headers are not the final ones
	}

	var vals []string
	if n := strings.Count(rest, "\n") + 1; scratch != nil && cap(scratch.vals) >= n { // +1: X-Request-Id
		vals = scratch.vals[:n]
	} else {
		vals = make([]string, n)
		if scratch != nil {
			scratch.vals = vals
		}
	}
	nv := 0
	var seenBuf [32]string // keys this response set, to tell repeats from pre-set headers
	seen := seenBuf[:0]
	var te string
	var haveCL bool
	var droppedBuf [4]string
	dropped := droppedBuf[:0]
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || !validHeaderKey(k) {
			return upResponse{}, fmt.Errorf("%w: header line %q", errBadResponse, line)
		}
		v = trimOWS(v)
		if strings.ContainsAny(v, "\r\n\x00") {
			return upResponse{}, fmt.Errorf("%w: header %s", errBadResponse, k)
		}
		if !canonicalKey(k) {
			k = http.CanonicalHeaderKey(k)
		}
		switch k {
		case "Content-Length":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || haveCL && n != resp.contentLength {
				return upResponse{}, fmt.Errorf("%w: Content-Length %q", errBadResponse, v)
			}
			haveCL, resp.contentLength = true, n
		case "Transfer-Encoding":
			te = v
			continue
		case "Upgrade":
			resp.upgrade = v
			continue
		case "Connection":
			for tok := range strings.SplitSeq(v, ",") {
				tok = strings.TrimSpace(tok)
				switch {
				case strings.EqualFold(tok, "close"):
					resp.close = true
				case strings.EqualFold(tok, "keep-alive"):
					if proto == "HTTP/1.0" {
						resp.close = false
					}
				case tok != "" && !strings.EqualFold(tok, "upgrade"):
					if !canonicalKey(tok) {
						tok = http.CanonicalHeaderKey(tok)
					}
					dropped = append(dropped, tok)
				}
			}
			continue
		}
		if k != "Content-Length" && hopHeader(k) {
			continue
		}
		if contains(seen, k) {
			h[k] = append(h[k], v) // a repeated header (Set-Cookie)
			continue
		}
		seen = append(seen, k)
		vals[nv] = v
		h[k] = vals[nv : nv+1 : nv+1]
		nv++
	}
	for _, k := range dropped {
		delete(h, k)
	}
	vals[nv] = reqID
	h["X-Request-Id"] = vals[nv : nv+1 : nv+1]
	return resp, resp.frame(method, te, haveCL, h)
}

// frame decides how the body ends (RFC 9112 §6.3).
func (resp *upResponse) frame(method, te string, haveCL bool, h http.Header) error {
	switch code := resp.status; {
	case method == http.MethodHead || code/100 == 1 || code == http.StatusNoContent || code == http.StatusNotModified:
		resp.noBody = true
		if code == http.StatusSwitchingProtocols {
			resp.close = false
		}
	case te != "":
		if !strings.EqualFold(te, "chunked") {
			// Other codings end the message only at close; refuse rather
			// than guess.
			return fmt.Errorf("%w: Transfer-Encoding %q", errBadResponse, te)
		}
		resp.chunked = true
		resp.contentLength = -1
		delete(h, "Content-Length")
	case !haveCL:
		resp.close = true // the body ends when the connection does
	}
	return nil
}

// readHeadSlow handles heads bigger than the connection buffer.
func readHeadSlow(br *bufio.Reader, method string, h http.Header, reqID string) (upResponse, error) {
	r, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return upResponse{}, err
	}
	resp := upResponse{
		status:        r.StatusCode,
		contentLength: r.ContentLength,
		close:         r.Close || r.ContentLength < 0 && len(r.TransferEncoding) == 0,
		upgrade:       r.Header.Get("Upgrade"),
		slowBody:      r.Body,
	}
	if r.StatusCode/100 == 1 && r.StatusCode != http.StatusSwitchingProtocols {
		return resp, nil
	}
	copyResponseHeader(h, r.Header)
	if r.ContentLength >= 0 {
		h["Content-Length"] = []string{strconv.FormatInt(r.ContentLength, 10)}
	}
	h["X-Request-Id"] = []string{reqID}
	return resp, nil
}

func validHeaderKey(k string) bool { return k == "" || isToken(k) }

// canonicalKey reports whether k is already in canonical MIME form.
func canonicalKey(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// bodyReader reads a response body with the framing its head declared.
type bodyReader struct {
	br      *bufio.Reader
	mode    int
	left    int64 // bodyFixed: bytes still to read
	chunked io.Reader
	slow    io.Reader
	trailer http.Header
}

const (
	bodyNone = iota
	bodyFixed
	bodyChunked
	bodyUntilClose
	bodySlow
)

func (b *bodyReader) reset(br *bufio.Reader, resp upResponse) {
	*b = bodyReader{br: br}
	switch {
	case resp.slowBody != nil:
		b.mode, b.slow = bodySlow, resp.slowBody
	case resp.noBody:
		b.mode = bodyNone
	case resp.chunked:
		b.mode = bodyChunked
		b.chunked = httputil.NewChunkedReader(br)
	case resp.contentLength >= 0:
		b.mode, b.left = bodyFixed, resp.contentLength
	default:
		b.mode = bodyUntilClose
	}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	switch b.mode {
	case bodyNone:
		return 0, io.EOF
	case bodyFixed:
		if b.left == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err := b.br.Read(p)
		b.left -= int64(n)
		switch {
		case err == io.EOF && b.left > 0:
			err = io.ErrUnexpectedEOF
		case err == nil && b.left == 0:
			err = io.EOF
		}
		return n, err
	case bodyChunked:
		n, err := b.chunked.Read(p)
		if err == io.EOF {
			if terr := b.readTrailer(); terr != nil {
				return n, terr
			}
		}
		return n, err
	case bodySlow:
		return b.slow.Read(p)
	default:
		return b.br.Read(p)
	}
}

// readTrailer reads the trailer section after the last chunk.
func (b *bodyReader) readTrailer() error {
	for {
		line, err := b.br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		l := strings.TrimRight(string(line), "\r\n")
		if l == "" {
			return nil
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || !validHeaderKey(k) {
			return fmt.Errorf("%w: trailer %q", errBadResponse, l)
		}
		if b.trailer == nil {
			b.trailer = http.Header{}
		}
		b.trailer.Add(http.CanonicalHeaderKey(k), strings.TrimSpace(v))
	}
}
