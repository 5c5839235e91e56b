package forward

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type key string

func (k key) MAC(purpose string, msg []byte) []byte {
	m := hmac.New(sha256.New, []byte(k))
	m.Write([]byte(purpose))
	m.Write(msg)
	return m.Sum(nil)
}

func TestForwardCarriesHopAndVouchedAddress(t *testing.T) {
	var got *http.Request
	var body string
	leader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		w.WriteHeader(http.StatusCreated)
	}))
	defer leader.Close()
	f := New("s2", func() Signer { return key("k") }, slog.Default())
	follower := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f.Forward(w, r, leader.Listener.Addr().String()); err != nil {
			t.Error(err)
		}
	}))
	defer follower.Close()

	resp, err := http.Post(follower.URL+"/v1/apps", "application/json", strings.NewReader(`{"name":"web"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || body != `{"name":"web"}` {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if !IsForwarded(got) || got.Header.Get(HeaderForwardedBy) != "s2" {
		t.Fatal("hop header missing")
	}
	if ClientAddr(got, key("k")) != "127.0.0.1" {
		t.Fatalf("client addr = %q", ClientAddr(got, key("k")))
	}
	// A client forging the header is not believed.
	forged := httptest.NewRequest(http.MethodPost, "/v1/apps", nil)
	forged.RemoteAddr = "10.9.9.9:1234"
	forged.Header.Set(HeaderForwardedFor, "1.2.3.4")
	forged.Header.Set(HeaderForwardSig, "00")
	if a := ClientAddr(forged, key("k")); a != "10.9.9.9" {
		t.Fatalf("forged address believed: %q", a)
	}
}

func TestForwardToDeadLeaderReportsError(t *testing.T) {
	f := New("s2", func() Signer { return nil }, slog.Default())
	rec := httptest.NewRecorder()
	err := f.Forward(rec, httptest.NewRequest(http.MethodGet, "/v1/apps", nil), "127.0.0.1:1")
	if err == nil || rec.Body.Len() != 0 {
		t.Fatalf("Forward to a dead leader = %v, wrote %q; want an error and nothing written", err, rec.Body.String())
	}
}

func TestForwardToAFormerLeaderReportsHop(t *testing.T) {
	former := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderHop, "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":{"code":"no_leader","message":"hop"}}`))
	}))
	defer former.Close()
	f := New("s2", func() Signer { return nil }, slog.Default())
	rec := httptest.NewRecorder()
	err := f.Forward(rec, httptest.NewRequest(http.MethodPost, "/v1/apps", nil), strings.TrimPrefix(former.URL, "http://"))
	if !errors.Is(err, ErrHop) || rec.Body.Len() != 0 || rec.Code != http.StatusOK {
		t.Fatalf("Forward to a former leader = %v, wrote %d %q; want ErrHop and nothing written (the caller retries)", err, rec.Code, rec.Body.String())
	}
}
