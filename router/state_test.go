package router

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "routes.json")
	routes := []Route{{App: "a", Release: 9, Hosts: []string{"a.test"}, Upstreams: []string{"127.0.0.1:1"}, ForceHTTPS: true, LB: LBLeastConn}}
	if err := saveState(path, routes); err != nil {
		t.Fatal(err)
	}
	if err := saveState(path, routes); err != nil { // over an existing file
		t.Fatal(err)
	}
	got, saved, err := loadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(routes, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if time.Since(saved) > time.Minute {
		t.Errorf("saved at %s", saved)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	os.WriteFile(path, []byte(`{"version": 99, "routes": []}`), 0o600)
	if _, _, err := loadState(path); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("unknown version: err = %v", err)
	}
}

func TestFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.json")
	write := func(rs []Route) {
		data, _ := json.Marshal(rs)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write([]Route{{App: "a", Release: 1}})
	src := &FileSource{Path: path, Interval: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got := make(chan []Route, 10)
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, func(rs []Route) { got <- rs }) }()
	if rs := <-got; rs[0].Release != 1 {
		t.Fatalf("first snapshot %+v", rs)
	}
	write([]Route{{App: "a", Release: 2}})
	if rs := <-got; rs[0].Release != 2 {
		t.Fatalf("second snapshot %+v", rs)
	}
	os.Remove(path)
	if err := <-done; err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("missing file: err = %v, want not-exist", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestStaticSourceWatch(t *testing.T) {
	src := NewStaticSource(Route{App: "a", Release: 1})
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan uint64, 10)
	done := make(chan error, 1)
	go func() { done <- src.Watch(ctx, func(rs []Route) { got <- rs[0].Release }) }()
	if r := <-got; r != 1 {
		t.Fatalf("got %d", r)
	}
	src.Set(Route{App: "a", Release: 2})
	if r := <-got; r != 2 {
		t.Fatalf("got %d", r)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("err = %v", err)
	}
	src.SetDown(ErrSourceDown)
	if err := src.Watch(t.Context(), func([]Route) {}); err != ErrSourceDown {
		t.Errorf("down: err = %v", err)
	}
}
