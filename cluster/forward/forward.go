// Package forward sends requests that only the raft leader can serve
// (writes and consistent reads) from a follower to the leader's HTTP API.
//
// hashicorp/raft does not forward for us. A forwarded request carries a hop
// header, so a request that reaches a second non-leader (leadership moved
// while it travelled) fails with ErrHop instead of bouncing around. The
// forwarding server also tells the leader who the original client was,
// authenticated with an HMAC under the cluster keyring so a client cannot
// forge its audit address.
package forward

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// Headers set on forwarded requests.
const (
	HeaderForwardedBy  = "X-Berth-Forwarded-By"
	HeaderForwardedFor = "X-Berth-Forwarded-For"
	HeaderForwardSig   = "X-Berth-Forward-Sig"
	// HeaderHop marks the refusal of a forwarded request by a server that
	// is not the leader (it did nothing with it), so the forwarding server
	// can try the new leader instead of passing the refusal on.
	HeaderHop = "X-Berth-Hop"
)

// ErrHop means a forwarded request reached a server that is not the leader.
var ErrHop = errors.New("request was already forwarded once and reached a non-leader; leadership changed, retry")

// Signer authenticates the original client address between servers.
type Signer interface {
	MAC(purpose string, msg []byte) []byte
}

// Forwarder proxies requests to the leader.
type Forwarder struct {
	self      string
	signer    func() Signer
	transport http.RoundTripper
	log       *slog.Logger
}

// New returns a forwarder for the server named self. signer may return nil
// before the server has a keyring; the client address is then not vouched for.
func New(self string, signer func() Signer, log *slog.Logger) *Forwarder {
	return &Forwarder{
		self:   self,
		signer: signer,
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		log: log,
	}
}

// IsForwarded reports whether r was forwarded by another server.
func IsForwarded(r *http.Request) bool { return r.Header.Get(HeaderForwardedBy) != "" }

// Forward proxies r to the leader's API at leaderAddr (host:port). If the
// leader cannot be reached, Forward writes nothing and returns the error, so
// the caller may retry (with a fresh body) or answer itself.
func (f *Forwarder) Forward(w http.ResponseWriter, r *http.Request, leaderAddr string) error {
	target := &url.URL{Scheme: "http", Host: leaderAddr}
	remote := ClientAddr(r, f.signer())
	var failed error
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = r.Host
			pr.Out.Header.Set(HeaderForwardedBy, f.self)
			pr.Out.Header.Set(HeaderForwardedFor, remote)
			if s := f.signer(); s != nil {
				pr.Out.Header.Set(HeaderForwardSig, hex.EncodeToString(sign(s, remote, r)))
			} else {
				pr.Out.Header.Del(HeaderForwardSig)
			}
		},
		Transport:     f.transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			if resp.Header.Get(HeaderHop) != "" {
				resp.Body.Close()
				return ErrHop
			}
			return nil
		},
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) {
			failed = fmt.Errorf("forward to leader at %s: %w", leaderAddr, err)
		},
	}
	proxy.ServeHTTP(w, r)
	return failed
}

func sign(s Signer, remote string, r *http.Request) []byte {
	return s.MAC("forward", []byte(remote+"\x00"+r.Method+"\x00"+r.URL.Path))
}

// ClientAddr returns the IP of the client that made r: the connection's
// peer, or the address a forwarding server vouched for with a valid MAC.
func ClientAddr(r *http.Request, s Signer) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	fwd := r.Header.Get(HeaderForwardedFor)
	if fwd == "" || s == nil {
		return peer
	}
	sig, err := hex.DecodeString(r.Header.Get(HeaderForwardSig))
	if err != nil || !hmac.Equal(sig, sign(s, fwd, r)) {
		return peer
	}
	return fwd
}
