package router

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/berthpaas/berth/cluster/api"
)

func TestServersMoveOnFromUnreachableOnes(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/v1/routes" {
			w.Header().Set(api.HeaderIndex, "7")
			w.Write([]byte(`{"index":7,"routes":[]}`))
			return
		}
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":{"code":"forbidden","message":"no"}}`))
	}))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there any more
	s := NewServers(api.NewClient(down, "t", nil), api.NewClient(up.URL, "t", nil))
	ctx := context.Background()
	routes := func(c *api.Client) error { _, _, err := c.Routes(ctx, nil); return err }
	if err := s.Do(ctx, routes); err != nil {
		t.Fatalf("with one server up: %v", err)
	}
	if s.cur.Load() != 1 {
		t.Fatalf("current server %d, want the one that answered", s.cur.Load())
	}
	// An API error is an answer: no failover, the error as is.
	err = s.Do(ctx, func(c *api.Client) error { return c.CertPut(ctx, "k", []byte("v")) })
	if !api.IsCode(err, api.CodeForbidden) || hits.Load() != 2 {
		t.Fatalf("API error: %v after %d hits, want forbidden from the live server", err, hits.Load())
	}
	all := NewServers(api.NewClient(down, "t", nil))
	if err := all.Do(ctx, routes); err == nil {
		t.Fatal("no server up, yet no error")
	}
}
