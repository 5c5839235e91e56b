package router

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"unsafe"
)

// The lean frontend's request-head parser. http.ReadRequest was its
// largest user-space cost (about seven allocations per request: a Request,
// a URL, the header map, value slices, strings). Here a head becomes one
// string; method, URI, keys and values are slices of it, and the Request,
// URL, header map, value storage and body reader are the connection's,
// reused from request to request.
//
// What it accepts is what net/http's server accepts, with these
// differences, all refusals of messages that are ambiguous between hops
// (request smuggling):
//
//   - obs-fold (a header line starting with a space or tab) is refused;
//     net/http joins it to the previous line.
//   - Content-Length together with Transfer-Encoding is refused; net/http
//     drops the Content-Length.
//   - Transfer-Encoding in an HTTP/1.0 request is refused; net/http
//     ignores it.
//
// Bare LF line endings are accepted, as net/http does: the head is
// re-serialised with CRLF towards the app, so they cannot desynchronise it.
// A CR anywhere else is refused.

// requestError is a request the frontend refuses, with the status it gets.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

var (
	errMalformedLine = &requestError{http.StatusBadRequest, "malformed request line"}
	errBadMethod     = &requestError{http.StatusBadRequest, "invalid method"}
	errBadVersion    = &requestError{http.StatusBadRequest, "unsupported protocol version"}
	errBadHeaderLine = &requestError{http.StatusBadRequest, "malformed header line"}
	errBadHeaderName = &requestError{http.StatusBadRequest, "invalid header name"}
	errBadHeaderVal  = &requestError{http.StatusBadRequest, "invalid header value"}
	errObsFold       = &requestError{http.StatusBadRequest, "obsolete line folding is not accepted"}
	errNoHost        = &requestError{http.StatusBadRequest, "missing required Host header"}
	errManyHosts     = &requestError{http.StatusBadRequest, "too many Host headers"}
	errBadHost       = &requestError{http.StatusBadRequest, "malformed Host header"}
	errBadLength     = &requestError{http.StatusBadRequest, "bad Content-Length"}
	errManyLengths   = &requestError{http.StatusBadRequest, "conflicting Content-Length headers"}
	errLengthAndTE   = &requestError{http.StatusBadRequest, "both Content-Length and Transfer-Encoding"}
	errTE10          = &requestError{http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request"}
	errUnsupportedTE = &requestError{http.StatusNotImplemented, "unsupported transfer encoding"}
)

// headEnd returns the length of the request head at the start of b,
// including the empty line that ends it ("\r\n" or a bare "\n"), or -1
// when b does not hold a whole head yet.
func headEnd(b []byte) int {
	i := 0
	for {
		j := indexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// readRequestHead reads the next request head from br and returns it as
// one string (with its final empty line), up to limit bytes. The string
// is a view of *buf, where the head is copied: it costs no allocation
// once *buf has grown to the connection's heads, and it is valid only
// until the next call with the same buf (the lean frontend's Request
// lives no longer than that).
func readRequestHead(br *bufio.Reader, buf *[]byte, limit int) (string, error) {
	for {
		n := br.Buffered()
		if n > 0 {
			data, _ := br.Peek(n)
			if end := headEnd(data); end >= 0 {
				return takeHead(br, buf, end), nil
			}
			if n >= br.Size() {
				return readLongHead(br, buf, limit)
			}
		}
		if _, err := br.Peek(n + 1); err != nil {
			if n > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

// takeHead copies the head, the first end bytes buffered in br, into
// *buf and returns it as readRequestHead does.
func takeHead(br *bufio.Reader, buf *[]byte, end int) string {
	data, _ := br.Peek(end)
	b := append((*buf)[:0], data...)
	*buf = b
	br.Discard(end)
	return unsafeString(b)
}

// unsafeString is b as a string without a copy: b must not change while
// the string is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// readLongHead gathers a head bigger than br's buffer.
func readLongHead(br *bufio.Reader, buf *[]byte, limit int) (string, error) {
	b := (*buf)[:0]
	defer func() { *buf = b }()
	for {
		n := br.Buffered()
		if n == 0 {
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return "", err
			}
			continue
		}
		data, _ := br.Peek(n)
		prev := len(b)
		b = append(b, data...)
		if end := headEnd(b[max(0, prev-3):]); end >= 0 {
			end += max(0, prev-3)
			br.Discard(end - prev)
			b = b[:end]
			return unsafeString(b), nil
		}
		br.Discard(n)
		if len(b) > limit {
			return "", errHeadTooLarge
		}
	}
}

// cutLine splits s after its first line, dropping the line ending
// ("\r\n" or "\n").
func cutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

// requestParser turns heads into Requests. Everything it returns is
// reused by the next parse: nothing may keep the Request, its Header or
// its Body after the request is served.
type requestParser struct {
	req     http.Request
	url     url.URL
	header  http.Header
	vals    []string
	fixed   fixedBody
	chunked chunkedBody
}

func newRequestParser() *requestParser {
	return &requestParser{header: make(http.Header, 16), vals: make([]string, 0, 16)}
}

var chunkedTE = []string{"chunked"}

// parse parses head (from readRequestHead) into the parser's Request,
// whose body reads from br.
func (p *requestParser) parse(head string, br *bufio.Reader) (*http.Request, error) {
	line, rest := cutLine(head)
	method, rest1, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(rest1, " ")
	if !ok1 || !ok2 {
		return nil, errMalformedLine
	}
	if !isToken(method) {
		return nil, errBadMethod
	}
	major, minor, ok := parseHTTPVersion(proto)
	if !ok || major != 1 {
		return nil, errBadVersion
	}
	if err := p.parseURI(method, uri); err != nil {
		return nil, err
	}

	h := p.header
	clear(h)
	vals := p.vals[:0]
	if n := strings.Count(rest, "\n"); n > cap(vals) {
		vals = make([]string, 0, n)
		p.vals = vals
	}
	var host, cl, te, conn string
	var nHost, nTE int
	var haveCL bool
	for rest != "" {
		line, rest = cutLine(rest)
		if line == "" {
			break // the end of the head
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, errObsFold
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errBadHeaderLine
		}
		if !isToken(k) {
			return nil, errBadHeaderName
		}
		v = trimOWS(v)
		if !validHeaderValue(v) {
			return nil, errBadHeaderVal
		}
		if !canonicalKey(k) {
			k = http.CanonicalHeaderKey(k)
		}
		switch k {
		case "Host":
			host = v
			nHost++
			continue // the Request's Host, as in http.ReadRequest
		case "Content-Length":
			if haveCL && v != cl {
				return nil, errManyLengths
			}
			if haveCL {
				continue // a repeat of the same value: keep one, as net/http does
			}
			haveCL, cl = true, v
		case "Transfer-Encoding":
			te = v
			nTE++
			continue // hop-by-hop, and replaced by TransferEncoding
		case "Connection":
			if conn == "" {
				conn = v
			} else {
				conn += "," + v
			}
		}
		if vv, seen := h[k]; seen {
			h[k] = append(vv, v)
			continue
		}
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}

	r := &p.req
	*r = http.Request{
		Method:     method,
		URL:        &p.url,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     h,
		Body:       http.NoBody,
		RequestURI: uri,
	}
	// An absolute-form target wins over the Host header (RFC 9112 §3.2.2).
	switch {
	case nHost > 1:
		return nil, errManyHosts
	case p.url.Host != "":
		r.Host = p.url.Host
	default:
		r.Host = host
	}
	if r.Host == "" && minor >= 1 {
		return nil, errNoHost
	}
	if !validHostHeader(r.Host) {
		return nil, errBadHost
	}
	if minor == 0 {
		r.Close = !headerHasToken(conn, "keep-alive") || headerHasToken(conn, "close")
	} else {
		r.Close = headerHasToken(conn, "close")
	}

	switch {
	case nTE > 0 && minor == 0:
		return nil, errTE10
	case nTE > 0 && haveCL:
		return nil, errLengthAndTE
	case nTE > 1 || nTE == 1 && !asciiEqualFoldLen(te, "chunked"):
		return nil, errUnsupportedTE
	case nTE == 1:
		r.TransferEncoding = chunkedTE
		r.ContentLength = -1
		p.chunked.reset(br)
		r.Body = &p.chunked
	case haveCL:
		n, err := strconv.ParseUint(cl, 10, 63)
		if err != nil {
			return nil, errBadLength
		}
		r.ContentLength = int64(n)
		if n > 0 {
			p.fixed = fixedBody{br: br, left: int64(n)}
			r.Body = &p.fixed
		}
	}
	return r, nil
}

// parseURI fills p.url from a request target. Plain origin-form targets
// (the common case) are split without allocating; anything else (escapes,
// absolute-form, authority-form, *) goes through url.ParseRequestURI, as
// in http.ReadRequest.
func (p *requestParser) parseURI(method, uri string) error {
	if path, query, ok := fastURI(uri); ok {
		p.url = url.URL{Path: path, RawQuery: query, ForceQuery: query == "" && len(path) < len(uri)}
		return nil
	}
	raw := uri
	justAuthority := method == http.MethodConnect && !strings.HasPrefix(uri, "/")
	if justAuthority {
		raw = "http://" + uri
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return badRequestf("malformed request target")
	}
	if justAuthority {
		u.Scheme = ""
	}
	p.url = *u
	return nil
}

// fastURI splits an origin-form target whose path needs no escaping or
// unescaping (so url.ParseRequestURI would give the same Path, an empty
// RawPath and the same RawQuery) and whose query is printable ASCII.
func fastURI(uri string) (path, query string, ok bool) {
	if uri == "" || uri[0] != '/' {
		return "", "", false
	}
	i := 0
	for ; i < len(uri); i++ {
		c := uri[i]
		if c == '?' {
			break
		}
		if !pathSafe(c) {
			return "", "", false
		}
	}
	path = uri[:i]
	if i < len(uri) {
		query = uri[i+1:]
		for j := 0; j < len(query); j++ {
			if c := query[j]; c <= ' ' || c >= 0x7f {
				return "", "", false
			}
		}
		if query == "" && strings.Count(uri, "?") != 1 {
			return "", "", false
		}
	}
	return path, query, true
}

// pathSafe: bytes url.URL leaves alone in a path (neither escaped by
// EscapedPath nor unescaped by parsing): letters, digits, -_.~$&+,/:;=@.
func pathSafe(c byte) bool { return inSet(c, pathLo, pathHi) }

// Byte sets as 128-bit masks (lo: bytes 0-63, hi: 64-127).
const (
	digits = (1<<10 - 1) << '0'
	upper  = (1<<26 - 1) << ('A' - 64)
	lower  = (1<<26 - 1) << ('a' - 64)

	pathLo = digits | 1<<'-' | 1<<'.' | 1<<'$' | 1<<'&' | 1<<'+' | 1<<',' | 1<<'/' | 1<<':' | 1<<';' | 1<<'='
	pathHi = upper | lower | 1<<('_'-64) | 1<<('~'-64) | 1<<('@'-64)

	// RFC 9110 tchar.
	tokenLo = digits | 1<<'!' | 1<<'#' | 1<<'$' | 1<<'%' | 1<<'&' | 1<<'\'' | 1<<'*' | 1<<'+' | 1<<'-' | 1<<'.'
	tokenHi = upper | lower | 1<<('^'-64) | 1<<('_'-64) | 1<<('`'-64) | 1<<('|'-64) | 1<<('~'-64)
)

func inSet(c byte, lo, hi uint64) bool {
	if c < 64 {
		return lo>>c&1 != 0
	}
	return c < 128 && hi>>(c-64)&1 != 0
}

// parseHTTPVersion accepts what http.ParseHTTPVersion accepts:
// "HTTP/X.Y" with one digit each.
func parseHTTPVersion(v string) (major, minor int, ok bool) {
	switch v {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	if len(v) != len("HTTP/X.Y") || !strings.HasPrefix(v, "HTTP/") || v[6] != '.' ||
		v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

// isToken reports whether s is a non-empty RFC 9110 token (methods and
// header names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !inSet(s[i], tokenLo, tokenHi) {
			return false
		}
	}
	return true
}

// headerHasToken reports whether a comma-separated header value lists
// token, in any case.
func headerHasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if asciiEqualFoldLen(strings.Trim(t, " \t"), token) {
			return true
		}
	}
	return false
}

// trimOWS is strings.Trim(s, " \t") without building a set per call.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func asciiEqualFoldLen(a, b string) bool { return len(a) == len(b) && asciiEqualFold(a, b) }

// fixedBody is a request body of a declared length.
type fixedBody struct {
	br   *bufio.Reader
	left int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

// chunkedBody is a chunked request body. The trailer section is read and
// checked, then dropped: the proxy does not forward request trailers.
type chunkedBody struct {
	br   *bufio.Reader
	r    io.Reader
	done bool
	err  error
}

func (b *chunkedBody) reset(br *bufio.Reader) {
	*b = chunkedBody{br: br, r: httputil.NewChunkedReader(br)}
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		if err = readTrailerSection(b.br); err == nil {
			b.done = true
			err = io.EOF
		}
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *chunkedBody) Close() error { return nil }

var errBadTrailer = errors.New("malformed request trailer")

// readTrailerSection reads the lines after the last chunk up to the empty
// one, checking them as header lines ending in CRLF; at most 64 KiB.
func readTrailerSection(br *bufio.Reader) error {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if err == io.EOF || err == bufio.ErrBufferFull {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if total += len(line); total > 64<<10 {
			return errBadTrailer
		}
		s, ok := strings.CutSuffix(string(line), "\r\n")
		if !ok {
			return errBadTrailer // net/http wants CRLF here too
		}
		if s == "" {
			return nil
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok || !isToken(k) || !validHeaderValue(strings.Trim(v, " \t")) {
			return errBadTrailer
		}
	}
}
