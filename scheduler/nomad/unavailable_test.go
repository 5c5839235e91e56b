package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestNomadUnreachable: every call fails fast with ErrUnavailable naming
// Nomad's address.
func TestNomadUnreachable(t *testing.T) {
	addr := closedAddr(t)
	r, err := New(Config{NomadAddr: "http://" + addr, ConsulAddr: closedAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rel := testRelease()
	calls := map[string]func(context.Context) error{
		"Instances": func(ctx context.Context) error { _, err := r.Instances(ctx, "shop"); return err },
		"Start":     func(ctx context.Context) error { return r.Start(ctx, rel) },
		"StopRelease": func(ctx context.Context) error {
			return r.StopRelease(ctx, "shop", 7, time.Second)
		},
		"Restart": func(ctx context.Context) error { return r.Restart(ctx, rel, "web") },
		"Logs": func(ctx context.Context) error {
			return r.Logs(ctx, "shop", scheduler.LogOptions{Follow: true}, func(scheduler.LogLine) {})
		},
		"Run": func(ctx context.Context) error {
			_, err := r.Run(ctx, rel, scheduler.RunOptions{Command: []string{"true"}})
			return err
		},
		"Destroy": func(ctx context.Context) error { return r.Destroy(ctx, "shop") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			began := time.Now()
			err := call(ctx)
			if took := time.Since(began); took > 3*time.Second {
				t.Errorf("took %s", took)
			}
			if !errors.Is(err, scheduler.ErrUnavailable) {
				t.Fatalf("err %v, want ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), "nomad at http://"+addr) {
				t.Errorf("the error does not name Nomad's address: %v", err)
			}
		})
	}
}

// TestConsulUnreachable: with Nomad up and Consul down, Instances fails
// with ErrUnavailable naming Consul's address.
func TestConsulUnreachable(t *testing.T) {
	// A Nomad that knows one running web allocation with an HTTP check.
	nomad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Path == "/v1/allocations":
			a := stub("running", "run", running(time.Now().Add(-time.Minute)))
			_ = json.NewEncoder(w).Encode([]*api.AllocationListStub{a})
		case strings.HasPrefix(req.URL.Path, "/v1/job/"):
			_ = json.NewEncoder(w).Encode(releaseJob(testRelease(), jobOptions{}))
		default:
			http.NotFound(w, req)
		}
	}))
	defer nomad.Close()
	caddr := closedAddr(t)
	r, err := New(Config{NomadAddr: nomad.URL, ConsulAddr: caddr})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = r.Instances(ctx, "shop")
	if !errors.Is(err, scheduler.ErrUnavailable) || !strings.Contains(err.Error(), "consul at "+caddr) {
		t.Fatalf("Instances with Consul down: %v, want ErrUnavailable naming %s", err, caddr)
	}
}

// TestNomadWithoutLeader: a Nomad agent that answers but has no leader is
// unavailable too.
func TestNomadWithoutLeader(t *testing.T) {
	nomad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, "No cluster leader", http.StatusInternalServerError)
	}))
	defer nomad.Close()
	r, err := New(Config{NomadAddr: nomad.URL, ConsulAddr: closedAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Instances(context.Background(), "shop"); !errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("Instances without a leader: %v, want ErrUnavailable", err)
	}
	// A refusal is not unavailability.
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Error(w, "Permission denied", http.StatusForbidden)
	}))
	defer refusing.Close()
	r2, err := New(Config{NomadAddr: refusing.URL, ConsulAddr: closedAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, err := r2.Instances(context.Background(), "shop"); err == nil || errors.Is(err, scheduler.ErrUnavailable) {
		t.Fatalf("Instances refused: %v, want an error that is not ErrUnavailable", err)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{NomadAddr: "http://"}); err == nil {
		t.Error("New accepted a Nomad address without a host")
	}
	cfg, err := Config{NomadAddr: "10.0.0.1:4646", StopDrain: -1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NomadAddr != "http://10.0.0.1:4646" || cfg.ConsulAddr != "127.0.0.1:8500" || cfg.Namespace != "default" ||
		len(cfg.Datacenters) != 1 || cfg.Datacenters[0] != "dc1" || cfg.StopDrain != 0 {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg, _ := (Config{}).withDefaults(); cfg.StopDrain != defaultStopDrain || cfg.NomadAddr != "http://127.0.0.1:4646" {
		t.Errorf("defaults: %+v", cfg)
	}
}
