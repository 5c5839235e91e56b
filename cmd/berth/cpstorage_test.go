package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/server"
	"github.com/berthpaas/berth/internal/ports"
	"github.com/berthpaas/berth/router"
)

// devServer starts a real single-server control plane and returns a
// client with a router token.
func devServer(t *testing.T) *api.Client {
	t.Helper()
	pa := ports.New()
	apiAddr, err := pa.Addr()
	if err != nil {
		t.Fatal(err)
	}
	raftAddr, err := pa.Addr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Dev: true, Name: "dev1", DataDir: t.TempDir(), Bind: apiAddr, RaftBind: raftAddr,
		Build: server.BuildConfig{Disabled: true}, Runtime: "none",
		Raft: server.RaftConfig{HeartbeatTimeout: server.Duration(200 * time.Millisecond), ElectionTimeout: server.Duration(200 * time.Millisecond),
			LeaderLeaseTimeout: server.Duration(100 * time.Millisecond)}}
	s, err := server.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	root, _, err := s.DevRootToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.NewClient(s.APIAddr(), root, nil).CreateToken(ctx, api.TokenCreateRequest{Name: "edge", Role: api.RoleRouter})
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(s.APIAddr(), tok.Secret, nil)
}

// TestControlPlaneStorage runs certmagic's storage contract against a real
// control plane: values round-trip, directories list and delete as
// certmagic's file storage does, missing keys are fs.ErrNotExist, and two
// routers' locks exclude each other (renewed while held, expiring when the
// holder dies).
func TestControlPlaneStorage(t *testing.T) {
	cl := devServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := &router.ControlPlaneStorage{Servers: router.NewServers(cl), Owner: "router-a", LockTTL: 3 * time.Second, LockPoll: 50 * time.Millisecond}
	b := &router.ControlPlaneStorage{Servers: router.NewServers(cl), Owner: "router-b", LockTTL: 3 * time.Second, LockPoll: 50 * time.Millisecond}

	if _, err := a.Load(ctx, "certificates/x/x.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if a.Exists(ctx, "certificates") {
		t.Fatal("Exists on an empty storage")
	}
	files := map[string][]byte{
		"certificates/acme/example.com/example.com.crt":  []byte("crt"),
		"certificates/acme/example.com/example.com.key":  []byte("key"),
		"certificates/acme/example.com/example.com.json": []byte("{}"),
		"certificates/acme/other.org/other.org.crt":      []byte("crt2"),
		"acme/users/admin/admin.json":                    []byte("user"),
	}
	for k, v := range files {
		if err := a.Store(ctx, k, v); err != nil {
			t.Fatalf("store %s: %v", k, err)
		}
	}
	// Router b sees what router a stored.
	for k, v := range files {
		got, err := b.Load(ctx, k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("load %s from the other router: %q %v", k, got, err)
		}
	}
	info, err := b.Stat(ctx, "certificates/acme/example.com/example.com.key")
	if err != nil || !info.IsTerminal || info.Size != 3 || info.Modified.IsZero() {
		t.Fatalf("stat of a key: %+v %v", info, err)
	}
	if info, err := b.Stat(ctx, "certificates/acme"); err != nil || info.IsTerminal {
		t.Fatalf("stat of a directory: %+v %v", info, err)
	}
	top, err := b.List(ctx, "certificates/acme", false)
	slices.Sort(top)
	if err != nil || !slices.Equal(top, []string{"certificates/acme/example.com", "certificates/acme/other.org"}) {
		t.Fatalf("list, not recursive: %v %v", top, err)
	}
	all, err := b.List(ctx, "certificates", true)
	if err != nil || len(all) != 4 {
		t.Fatalf("list, recursive: %v %v", all, err)
	}
	if err := b.Delete(ctx, "certificates/acme/example.com"); err != nil {
		t.Fatalf("delete a directory: %v", err)
	}
	if a.Exists(ctx, "certificates/acme/example.com/example.com.crt") || !a.Exists(ctx, "certificates/acme/other.org") {
		t.Fatal("deleting a directory left its keys or took its neighbours")
	}
	if err := b.Delete(ctx, "certificates/acme/example.com"); err != nil {
		t.Fatalf("deleting a missing key is not an error for certmagic: %v", err)
	}

	// Locks: b waits while a holds the lock; a's lock outlives its TTL
	// because it is renewed; b gets it once a unlocks.
	if err := a.Lock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	var bHas atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Lock(ctx, "issue_cert_example.com"); err != nil {
			t.Errorf("b lock: %v", err)
			return
		}
		bHas.Store(true)
	}()
	time.Sleep(4 * time.Second) // longer than the TTL: only renewal keeps a's lock
	if bHas.Load() {
		t.Fatal("b took the lock while a held it (renewal failed?)")
	}
	if err := a.Unlock(ctx, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bHas.Load() {
		t.Fatal("b never got the lock")
	}
	if ok, err := a.TryLock(ctx, "issue_cert_example.com"); err != nil || ok {
		t.Fatalf("TryLock of a held lock: %v %v", ok, err)
	}
	// A router that dies holding a lock: its lease expires.
	dead := &router.ControlPlaneStorage{Servers: router.NewServers(cl), Owner: "router-dead", LockTTL: time.Second}
	if err := cl.CertLock(ctx, "issue_cert_dead.com", dead.Owner, time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	lctx, lcancel := context.WithTimeout(ctx, 10*time.Second)
	defer lcancel()
	if err := a.Lock(lctx, "issue_cert_dead.com"); err != nil {
		t.Fatalf("lock held by a dead router: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s to take over an expired lock", d)
	}
	_ = b.Unlock(ctx, "issue_cert_example.com")
	_ = a.Unlock(ctx, "issue_cert_dead.com")
}
