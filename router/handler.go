package router

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// HealthPath answers on every host with the router's own health.
const HealthPath = "/__berth/health"

func init() {
	caddy.RegisterModule((*Handler)(nil))
}

// ServeHTTP routes one request: the router's health endpoint, a 404 page
// for unknown hosts (no upstream contacted), a redirect for ForceHTTPS,
// else the app's upstreams through berth's lean proxy. Every routed request
// is counted and logged.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.serve(r.Context(), w, r, nanotime())
}

// serve is ServeHTTP with the request's context and start time passed
// apart: the lean frontend does not give every request a context of its own.
func (a *App) serve(ctx context.Context, w http.ResponseWriter, r *http.Request, start int64) {
	if r.URL.Path == HealthPath {
		a.serveHealth(w)
		return
	}
	rt := a.table.Load().lookup(requestHost(r.Host))
	if rt == nil {
		a.metrics.unknownHost.Inc()
		writePage(w, http.StatusNotFound, pageUnknownHost)
		a.logRequest(r, nil, "", result{status: http.StatusNotFound}, start)
		return
	}
	if r.TLS == nil {
		// ACME HTTP-01 challenges, only for routed names (no others are
		// ever ordered, so unknown hosts cost no storage lookup), and
		// before ForceHTTPS's redirect.
		if strings.HasPrefix(r.URL.Path, acmeChallengePath) && a.handleACMEChallenge(w, ownedRequest(w, r)) {
			return
		}
		if rt.ForceHTTPS {
			a.redirectHTTPS(w, r)
			a.logRequest(r, rt, "", result{status: http.StatusPermanentRedirect}, start)
			return
		}
	} else if rt.HSTS {
		w.Header()["Strict-Transport-Security"] = []string{hstsValue}
	}
	if r.ContentLength != 0 && r.ProtoMajor == 1 {
		// A proxy must stream both ways: without this, net/http stops
		// reading the client's body once the app's response starts.
		http.NewResponseController(w).EnableFullDuplex()
	}
	reqID := requestID(r, scratchOf(w))
	res := &result{}
	defer a.logRequest2(r, rt, reqID, res, start) // also runs when the proxy aborts the response
	*res = a.proxy(ctx, w, r, rt, reqID, start)
}

// ownedRequest is r with strings of its own, for code outside the router
// (certmagic) that might keep some: the lean frontend's Request is a view
// of memory its connection's next request reuses (parse.go).
func ownedRequest(w http.ResponseWriter, r *http.Request) *http.Request {
	if scratchOf(w) == nil {
		return r // net/http's Request owns its strings
	}
	r2 := r.Clone(r.Context())
	r2.Method = strings.Clone(r.Method)
	r2.Host = strings.Clone(r.Host)
	r2.RequestURI = strings.Clone(r.RequestURI)
	r2.Proto = strings.Clone(r.Proto)
	u := *r.URL
	u.Host, u.Path, u.RawPath, u.RawQuery = strings.Clone(u.Host), strings.Clone(u.Path), strings.Clone(u.RawPath), strings.Clone(u.RawQuery)
	r2.URL = &u
	h := make(http.Header, len(r.Header))
	for k, vv := range r.Header {
		cv := make([]string, len(vv))
		for i, v := range vv {
			cv[i] = strings.Clone(v)
		}
		h[strings.Clone(k)] = cv
	}
	r2.Header = h
	return r2
}

func (a *App) logRequest2(r *http.Request, rt *route, reqID string, res *result, start int64) {
	rr := *res
	if rr.status == 0 {
		rr.status = http.StatusBadGateway // aborted mid-response
	}
	a.logRequest(r, rt, reqID, rr, start)
}

func (a *App) logRequest(r *http.Request, rt *route, reqID string, res result, start int64) {
	d := time.Duration(nanotime() - start)
	e := logEntry{
		start:     time.Now().Add(-d),
		duration:  d,
		requestID: reqID,
		method:    r.Method,
		host:      r.Host,
		uri:       r.RequestURI,
		remote:    r.RemoteAddr,
		status:    res.status,
		bytes:     res.bytes,
	}
	if rt != nil {
		e.app, e.release = rt.App, rt.Release
		rt.metrics.observe(res.status, d.Seconds(), res.upErrors)
	}
	if res.upstream != nil {
		e.upstream = res.upstream.addr
	}
	a.access.log(&e)
}

// acmeChallengePath is where ACME HTTP-01 challenges are asked.
const acmeChallengePath = "/.well-known/acme-challenge/"

// hstsValue is the Strict-Transport-Security header of HSTS apps: one year.
const hstsValue = "max-age=31536000"

// redirectHTTPS sends a plain-HTTP request of a ForceHTTPS app to the same
// host and URI on https, with the router's HTTPS port unless it is 443.
func (a *App) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h := requestHost(host); h != "" {
		host = h
	}
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]" // an IPv6 literal
	}
	if port := a.httpsRedirectPort(); port != "" {
		host += ":" + port
	}
	w.Header()["Location"] = []string{"https://" + host + r.URL.RequestURI()}
	w.WriteHeader(http.StatusPermanentRedirect)
}

// health is what HealthPath reports.
type health struct {
	Status     string `json:"status"`
	Routes     int    `json:"routes"`
	SourceLive bool   `json:"source_live"` // false: serving the state file, the source has not answered yet
}

func (a *App) serveHealth(w http.ResponseWriter) {
	body, _ := json.Marshal(health{Status: "ok", Routes: a.table.Load().Len(), SourceLive: a.live.Load()})
	w.Header()["Content-Type"] = []string{"application/json"}
	w.Header()["Cache-Control"] = []string{"no-store"}
	w.Write(append(body, '\n'))
}

// Handler is the "http.handlers.berth" module: berth's router as a handler
// inside Caddy's http app. By default it proxies with berth's lean proxy;
// with Next set it only routes (404, request ID, log, metrics) and hands
// the request to the next handler, normally a reverse_proxy whose dynamic
// upstreams come from "http.reverse_proxy.upstreams.berth".
type Handler struct {
	// Next hands proxying to the next handler in the route.
	Next bool `json:"next,omitempty"`

	app *App
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.berth", New: func() caddy.Module { return new(Handler) }}
}

// Provision finds the berth app.
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := ctx.App("berth")
	if err != nil {
		return err
	}
	h.app = app.(*App)
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.Next {
		h.app.ServeHTTP(w, r)
		return nil
	}
	return h.app.serveNext(w, r, next)
}

// serveNext is the routing half only, for a Caddy reverse_proxy behind it.
func (a *App) serveNext(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	start := nanotime()
	if r.URL.Path == HealthPath {
		a.serveHealth(w)
		return nil
	}
	rt := a.table.Load().lookup(requestHost(r.Host))
	if rt == nil {
		a.metrics.unknownHost.Inc()
		writePage(w, http.StatusNotFound, pageUnknownHost)
		a.logRequest(r, nil, "", result{status: http.StatusNotFound}, start)
		return nil
	}
	if r.TLS == nil {
		if rt.ForceHTTPS {
			a.redirectHTTPS(w, r)
			a.logRequest(r, rt, "", result{status: http.StatusPermanentRedirect}, start)
			return nil
		}
	} else if rt.HSTS {
		w.Header()["Strict-Transport-Security"] = []string{hstsValue}
	}
	if len(rt.ups) == 0 {
		writePage(w, http.StatusServiceUnavailable, pageUnavailable)
		a.logRequest(r, rt, "", result{status: http.StatusServiceUnavailable}, start)
		return nil
	}
	reqID := requestID(r, nil)
	r.Header["X-Request-Id"] = []string{reqID}
	w.Header()["X-Request-Id"] = []string{reqID}
	rec := caddyhttp.NewResponseRecorder(w, nil, nil)
	err := next.ServeHTTP(rec, r)
	status := rec.Status()
	if err != nil {
		if he, ok := err.(caddyhttp.HandlerError); ok && he.StatusCode != 0 {
			status = he.StatusCode
			if rec.Status() == 0 && (status == http.StatusBadGateway || status == http.StatusServiceUnavailable) {
				writePage(w, http.StatusServiceUnavailable, pageUnavailable)
				status, err = http.StatusServiceUnavailable, nil
			}
		}
	}
	a.logRequest(r, rt, reqID, result{status: status, bytes: int64(rec.Size())}, start)
	return err
}
