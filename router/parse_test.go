package router

import (
	"bufio"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// parseRaw reads and parses one request from raw, as the lean frontend does.
func parseRaw(raw string, r io.Reader) (*http.Request, *bufio.Reader, error) {
	if r == nil {
		r = strings.NewReader(raw)
	}
	br := bufio.NewReaderSize(r, 4096)
	var buf []byte
	head, err := readRequestHead(br, &buf, 64<<10)
	if err != nil {
		return nil, br, err
	}
	req, err := newRequestParser().parse(head, br)
	return req, br, err
}

// goParse is what the lean frontend accepted before parse.go:
// http.ReadRequest plus the checks net/http's server adds.
func goParse(raw string) (*http.Request, error) {
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	switch {
	case req.ProtoMajor != 1:
		return nil, errors.New("unsupported protocol version")
	case req.ProtoAtLeast(1, 1) && req.Host == "":
		return nil, errors.New("missing required Host header")
	case !validHostHeader(req.Host):
		return nil, errors.New("malformed Host header")
	}
	for k, vv := range req.Header {
		if !validHeaderKey(k) {
			return nil, errors.New("invalid header name")
		}
		for _, v := range vv {
			if !validHeaderValue(v) {
				return nil, errors.New("invalid header value")
			}
		}
	}
	return req, nil
}

func statusOf(err error) int {
	var re *requestError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		return re.status
	case errors.Is(err, errHeadTooLarge):
		return http.StatusRequestHeaderFieldsTooLarge
	}
	return http.StatusBadRequest
}

func TestParseRequestAccepts(t *testing.T) {
	for _, tc := range []struct {
		raw         string
		method, uri string
		host, path  string
		query       string
		length      int64
		close       bool
		body        string
		header      http.Header
		minor       int
		nextRequest string // what is left in the reader
	}{
		{raw: "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", method: "GET", uri: "/", host: "a.test", path: "/", minor: 1,
			header: http.Header{}},
		{raw: "GET /p/a;b=c?x=1&y=%20 HTTP/1.1\r\nhost: a.test:8080\r\nuser-agent:  wrk \t\r\nAccept: */*\r\nAccept: text/html\r\n\r\nGET",
			method: "GET", uri: "/p/a;b=c?x=1&y=%20", host: "a.test:8080", path: "/p/a;b=c", query: "x=1&y=%20", minor: 1,
			header:      http.Header{"User-Agent": {"wrk"}, "Accept": {"*/*", "text/html"}},
			nextRequest: "GET"},
		{raw: "GET /%7Euser/a%2Fb HTTP/1.1\r\nHost: a.test\r\n\r\n", method: "GET", uri: "/%7Euser/a%2Fb", host: "a.test", path: "/~user/a/b", minor: 1,
			header: http.Header{}},
		{raw: "GET http://b.test/x?q HTTP/1.1\r\nHost: a.test\r\n\r\n", method: "GET", uri: "http://b.test/x?q", host: "b.test", path: "/x", query: "q", minor: 1,
			header: http.Header{}},
		{raw: "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n", method: "OPTIONS", uri: "*", host: "a.test", path: "*", minor: 1,
			header: http.Header{}},
		// Bare LF line endings, as net/http accepts them.
		{raw: "GET / HTTP/1.1\nHost: a.test\nX: 1\n\n", method: "GET", uri: "/", host: "a.test", path: "/", minor: 1,
			header: http.Header{"X": {"1"}}},
		// HTTP/1.0: no Host needed, closes unless keep-alive.
		{raw: "GET / HTTP/1.0\r\n\r\n", method: "GET", uri: "/", path: "/", close: true, header: http.Header{}},
		{raw: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", method: "GET", uri: "/", path: "/",
			header: http.Header{"Connection": {"Keep-Alive"}}},
		{raw: "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", method: "GET", uri: "/", host: "a", path: "/", close: true, minor: 1,
			header: http.Header{"Connection": {"foo, close"}}},
		// Bodies.
		{raw: "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET", method: "POST", uri: "/e", host: "a", path: "/e", length: 5, minor: 1,
			body: "hello", nextRequest: "GET", header: http.Header{"Content-Length": {"5"}}},
		{raw: "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:  5\r\n\r\nhello", method: "POST", uri: "/e", host: "a", path: "/e", length: 5, minor: 1,
			body: "hello", header: http.Header{"Content-Length": {"5"}}},
		{raw: "POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\nGET", method: "POST", uri: "/e", host: "a", path: "/e",
			length: -1, minor: 1, body: "hello", nextRequest: "GET", header: http.Header{}},
		{raw: "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", method: "POST", uri: "/e", host: "a", path: "/e", minor: 1,
			header: http.Header{"Content-Length": {"0"}}},
		// Upgrade and Expect are passed on for the frontend and proxy.
		{raw: "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", method: "GET", uri: "/ws", host: "a", path: "/ws", minor: 1,
			header: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}},
	} {
		req, br, err := parseRaw(tc.raw, nil)
		if err != nil {
			t.Errorf("%q: %v", tc.raw, err)
			continue
		}
		if req.Method != tc.method || req.RequestURI != tc.uri || req.Host != tc.host || req.URL.Path != tc.path ||
			req.URL.RawQuery != tc.query || req.ContentLength != tc.length || req.Close != tc.close || req.ProtoMinor != tc.minor {
			t.Errorf("%q: got %s %s host=%q path=%q query=%q length=%d close=%v minor=%d", tc.raw, req.Method, req.RequestURI,
				req.Host, req.URL.Path, req.URL.RawQuery, req.ContentLength, req.Close, req.ProtoMinor)
		}
		if !maps.EqualFunc(req.Header, tc.header, slices.Equal) {
			t.Errorf("%q: header %v, want %v", tc.raw, req.Header, tc.header)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil || string(body) != tc.body {
			t.Errorf("%q: body %q %v, want %q", tc.raw, body, err, tc.body)
		}
		if rest, _ := io.ReadAll(br); string(rest) != tc.nextRequest {
			t.Errorf("%q: left %q, want %q", tc.raw, rest, tc.nextRequest)
		}
		// net/http agrees on everything it parses.
		goReq, err := goParse(tc.raw)
		if err != nil {
			t.Errorf("%q: net/http refuses it: %v", tc.raw, err)
			continue
		}
		if goReq.Host != req.Host || goReq.ContentLength != req.ContentLength || goReq.Close != req.Close || goReq.URL.String() != req.URL.String() {
			t.Errorf("%q: net/http: host=%q length=%d close=%v url=%q", tc.raw, goReq.Host, goReq.ContentLength, goReq.Close, goReq.URL)
		}
	}
}

func TestParseRequestRefuses(t *testing.T) {
	for _, tc := range []struct {
		raw    string
		status int
		goToo  bool // net/http refuses it as well
	}{
		{"\r\n", 400, true},
		{"GET /\r\nHost: a\r\n\r\n", 400, true},
		{"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, true},
		{"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, true},
		{"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, true},
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, true},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, true},
		{"GET / HTTP/1\r\nHost: a\r\n\r\n", 400, true},
		{"GET / http/1.1\r\nHost: a\r\n\r\n", 400, true},
		{"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", 400, true},
		{"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400, true},
		{"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400, true},
		{"\x16\x03\x01garbage\r\n\r\n", 400, true},
		// Hosts.
		{"GET / HTTP/1.1\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, true},
		// Header lines.
		{"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, true},
		{"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, true},
		// obs-fold: net/http joins it, the router refuses it.
		{"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", 400, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", 400, false},
		{"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\r\n\r\n", 400, true},
		// Request smuggling.
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", 400, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, true},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \x0b\r\n\r\n", 400, true},
		// Both framings: net/http drops Content-Length, the router refuses.
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, false},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400, false},
		// Transfer-Encoding in HTTP/1.0: net/http ignores it, the router refuses.
		{"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, false},
	} {
		_, _, err := parseRaw(tc.raw, nil)
		if got := statusOf(err); got != tc.status {
			t.Errorf("%q: got %d (%v), want %d", tc.raw, got, err, tc.status)
		}
		if _, err := goParse(tc.raw); (err != nil) != tc.goToo {
			t.Errorf("%q: net/http error %v, want refused=%v", tc.raw, err, tc.goToo)
		}
	}
}

func TestParseRequestBodies(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want error
	}{
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel", io.ErrUnexpectedEOF},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", io.ErrUnexpectedEOF},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", nil},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", errBadTrailer},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n", io.ErrUnexpectedEOF},
	} {
		req, _, err := parseRaw(tc.raw, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.raw, err)
		}
		_, err = io.ReadAll(req.Body)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%q: body error %v, want %v", tc.raw, err, tc.want)
		}
	}
}

func TestReadRequestHead(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("x", 10000) + "\r\n\r\nGET / HTTP/1.1\r\n"
	for name, r := range map[string]io.Reader{
		"whole":       strings.NewReader(raw),
		"byte a time": iotest.OneByteReader(strings.NewReader(raw)),
		"half":        iotest.HalfReader(strings.NewReader(raw)),
	} {
		req, br, err := parseRaw(raw, r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(req.Header.Get("X-Long")) != 10000 {
			t.Errorf("%s: X-Long has %d bytes", name, len(req.Header.Get("X-Long")))
		}
		if rest, _ := io.ReadAll(br); string(rest) != "GET / HTTP/1.1\r\n" {
			t.Errorf("%s: left %q", name, rest)
		}
	}
	for name, r := range map[string]string{
		"too large":         "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 70<<10) + "\r\n\r\n",
		"too large, no end": "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 20<<10),
	} {
		if _, _, err := parseRaw(r, nil); !errors.Is(err, errHeadTooLarge) {
			t.Errorf("%s: %v, want errHeadTooLarge", name, err)
		}
	}
	for _, r := range []string{"", "GET / HTTP/1.1\r\nHost: a\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r"} {
		_, _, err := parseRaw(r, nil)
		if r == "" && err != io.EOF || r != "" && err != io.ErrUnexpectedEOF {
			t.Errorf("%q: %v", r, err)
		}
	}
}

// TestParseRequestReuse: the parser's Request and Header belong to one
// request at a time; nothing of the previous one shows through.
func TestParseRequestReuse(t *testing.T) {
	p := newRequestParser()
	br := bufio.NewReader(strings.NewReader("POST /a?x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nContent-Length: 2\r\n\r\nhi" +
		"GET /b HTTP/1.1\r\nHost: b\r\n\r\n"))
	var buf []byte
	for i, want := range []string{"a /a x 2 1", "b /b  0 "} {
		head, err := readRequestHead(br, &buf, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		req, err := p.parse(head, br)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join([]string{req.Host, req.URL.Path, req.URL.RawQuery, strconv.FormatInt(req.ContentLength, 10), req.Header.Get("X-A")}, " ")
		if got != want || i == 1 && len(req.Header) != 0 {
			t.Errorf("request %d: %q %v, want %q", i, got, req.Header, want)
		}
		io.Copy(io.Discard, req.Body)
	}
}

// FuzzParseRequest checks the parser against net/http: whatever the router
// accepts, net/http accepts too and reads the same way.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"GET /p?q=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"GET http://b/x HTTP/1.1\r\nHost: a\r\nX: 1\r\nX: 2\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET /%41?%zz HTTP/1.1\nHost: [::1]:80\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req, _, err := parseRaw(raw, nil)
		if err != nil {
			return
		}
		goReq, goErr := goParse(raw)
		if goErr != nil {
			t.Fatalf("router accepts %q, net/http refuses it: %v", raw, goErr)
		}
		if req.Method != goReq.Method || req.RequestURI != goReq.RequestURI || req.Host != goReq.Host ||
			req.ContentLength != goReq.ContentLength || req.Close != goReq.Close || req.ProtoMinor != goReq.ProtoMinor ||
			req.URL.String() != goReq.URL.String() || req.URL.Path != goReq.URL.Path || req.URL.RawPath != goReq.URL.RawPath {
			t.Fatalf("%q: router %s %s host=%q length=%d close=%v url=%q; net/http %s %s host=%q length=%d close=%v url=%q",
				raw, req.Method, req.RequestURI, req.Host, req.ContentLength, req.Close, req.URL,
				goReq.Method, goReq.RequestURI, goReq.Host, goReq.ContentLength, goReq.Close, goReq.URL)
		}
		gh := goReq.Header.Clone()
		if _, ok := req.Header["Cache-Control"]; !ok && len(gh["Pragma"]) > 0 {
			delete(gh, "Cache-Control") // net/http copies Pragma: no-cache into it
		}
		if !maps.EqualFunc(req.Header, gh, slices.Equal) {
			t.Fatalf("%q: router header %q, net/http %q", raw, req.Header, gh)
		}
		body, err := io.ReadAll(req.Body)
		goBody, goErr := io.ReadAll(goReq.Body)
		if err == nil && (goErr != nil || string(body) != string(goBody)) {
			t.Fatalf("%q: router body %q %v; net/http %q %v", raw, body, err, goBody, goErr)
		}
	})
}

// BenchmarkParseRequest compares the lean frontend's parser with
// http.ReadRequest on a typical head.
func BenchmarkParseRequest(b *testing.B) {
	raw := "GET /api/items?page=2 HTTP/1.1\r\nHost: web.apps.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Cookie: session=abcdef0123456789\r\nConnection: keep-alive\r\n\r\n"
	sr := strings.NewReader(raw)
	br := bufio.NewReaderSize(sr, 4096)
	b.Run("berth", func(b *testing.B) {
		p := newRequestParser()
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			sr.Reset(raw)
			br.Reset(sr)
			head, err := readRequestHead(br, &buf, 64<<10)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.parse(head, br); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net/http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sr.Reset(raw)
			br.Reset(sr)
			if _, err := http.ReadRequest(br); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestByteSets checks the masks against their definitions.
func TestByteSets(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		token := c > ' ' && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
		if isToken(string(b)) != token {
			t.Errorf("isToken(%q) = %v", b, !token)
		}
		path := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("-_.~$&+,/:;=@", rune(c))
		if pathSafe(b) != path {
			t.Errorf("pathSafe(%q) = %v", b, !path)
		}
	}
}
