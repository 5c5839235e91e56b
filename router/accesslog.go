package router

import (
	"context"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLog writes one JSON line per request. Lines are appended to a
// buffer under a short lock and written out in batches (every 100 ms or
// 64 KiB), so logging costs a few hundred nanoseconds and no syscall per
// request.
type accessLog struct {
	w io.Writer

	mu       sync.Mutex
	buf      []byte
	lastSec  int64  // the second tsPrefix was formatted for
	tsPrefix []byte // "2006-01-02T15:04:05" of lastSec, UTC
}

const accessLogFlushSize = 64 << 10

func newAccessLog(w io.Writer) *accessLog {
	if w == nil {
		w = io.Discard
	}
	return &accessLog{w: w, buf: make([]byte, 0, 2*accessLogFlushSize)}
}

// logEntry is what one line says.
type logEntry struct {
	start     time.Time
	duration  time.Duration
	requestID string
	app       string
	release   uint64
	upstream  string
	method    string
	host      string
	uri       string
	remote    string
	status    int
	bytes     int64
}

func (l *accessLog) log(e *logEntry) {
	if l.w == io.Discard {
		return
	}
	l.mu.Lock()
	b := l.buf
	b = append(b, `{"ts":"`...)
	if sec := e.start.Unix(); sec != l.lastSec || l.tsPrefix == nil {
		l.lastSec = sec
		l.tsPrefix = e.start.UTC().AppendFormat(l.tsPrefix[:0], "2006-01-02T15:04:05")
	}
	b = append(b, l.tsPrefix...)
	ms := e.start.Nanosecond() / 1e6
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	b = append(b, `","request_id":`...)
	b = appendJSONString(b, e.requestID)
	b = append(b, `,"app":`...)
	b = appendJSONString(b, e.app)
	b = append(b, `,"release":`...)
	b = strconv.AppendUint(b, e.release, 10)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, e.upstream)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.host)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, e.uri)
	b = append(b, `,"remote":`...)
	b = appendJSONString(b, e.remote)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	us := max(e.duration.Microseconds(), 0) // milliseconds with 3 decimals, without float formatting
	b = strconv.AppendInt(b, us/1000, 10)
	b = append(b, '.', byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10))
	b = append(b, "}\n"...)
	l.buf = b
	if len(b) >= accessLogFlushSize {
		l.writeLocked()
	}
	l.mu.Unlock()
}

func (l *accessLog) writeLocked() {
	if len(l.buf) == 0 {
		return
	}
	l.w.Write(l.buf) // an access log that cannot be written is not worth failing requests for
	l.buf = l.buf[:0]
}

func (l *accessLog) flush() {
	l.mu.Lock()
	l.writeLocked()
	l.mu.Unlock()
}

// run flushes periodically until ctx ends.
func (l *accessLog) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush()
			return
		case <-t.C:
			l.flush()
		}
	}
}

// appendJSONString appends s as a JSON string, escaping quotes, backslashes
// and control characters and replacing invalid UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
