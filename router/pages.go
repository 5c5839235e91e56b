package router

import (
	"net/http"
	"strconv"
)

// Short, static pages: nothing from the request is echoed back.
var (
	pageUnknownHost = []byte(`<!doctype html><title>404 Not Found</title><h1>404 Not Found</h1><p>No app is configured for this host name.</p>` + "\n")
	pageUnavailable = []byte(`<!doctype html><title>503 Service Unavailable</title><h1>503 Service Unavailable</h1><p>This app has no running instance that can take the request. Try again shortly.</p>` + "\n")
	pageBadGateway  = []byte(`<!doctype html><title>502 Bad Gateway</title><h1>502 Bad Gateway</h1><p>The app closed the connection without answering.</p>` + "\n")
	pageTimeout     = []byte(`<!doctype html><title>504 Gateway Timeout</title><h1>504 Gateway Timeout</h1><p>The app did not answer in time.</p>` + "\n")
)

func writePage(w http.ResponseWriter, status int, page []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"text/html; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(page))}
	h["Cache-Control"] = []string{"no-store"}
	if status == http.StatusServiceUnavailable {
		h["Retry-After"] = []string{"1"}
	}
	w.WriteHeader(status)
	w.Write(page)
}
