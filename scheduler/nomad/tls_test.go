package nomad

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/internal/wait"
	"github.com/berthpaas/berth/scheduler"
	"github.com/berthpaas/berth/scheduler/nomad/nomadtest"
	"github.com/berthpaas/berth/scheduler/runtimetest"
)

// TestTLSAgents runs a release through Nomad and Consul dev agents that
// serve their HTTP APIs over HTTPS only (Nomad talks to Consul over HTTPS
// too): with the CA, Start, Instances (health from Consul) and Logs (from
// the client node, reached directly) work; with another CA, or a name the
// certificate does not hold, calls fail at once with an error that says
// what berth trusted, and that is not unavailability.
func TestTLSAgents(t *testing.T) {
	needDocker(t)
	files := nomadtest.NewTLS(t)
	agents := nomadtest.StartWith(t, nomadtest.Options{TLS: files})
	if !strings.HasPrefix(agents.NomadAddr, "https://") || !strings.HasPrefix(agents.ConsulAddr, "https://") {
		t.Fatalf("agents at %s and %s, want https", agents.NomadAddr, agents.ConsulAddr)
	}
	ca := TLS{CACert: files.CAFile}
	newRuntime := func(nomadTLS, consulTLS TLS) *Runtime {
		t.Helper()
		r, err := New(Config{NomadAddr: agents.NomadAddr, NomadTLS: nomadTLS, ConsulAddr: agents.ConsulAddr, ConsulTLS: consulTLS,
			Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("works", func(t *testing.T) {
		tag := "berth-runtimetest:nomad-tls-" + randomHex(6)
		runtimetest.BuildTestImage(t, tag)
		// host:port with TLS options means https.
		r, err := New(Config{
			NomadAddr: strings.TrimPrefix(agents.NomadAddr, "https://"), NomadTLS: TLS{CACert: files.CAFile, ServerName: "server.global.nomad"},
			ConsulAddr: strings.TrimPrefix(agents.ConsulAddr, "https://"), ConsulTLS: ca, Logger: testLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() }) // after the Destroy below
		rel := scheduler.Release{App: "tls", Version: 1, Image: tag, KillTimeout: time.Second,
			Env: map[string]string{"RELEASE": "v1"},
			Processes: []scheduler.Process{{Name: "web", Count: 1, Check: scheduler.Check{
				Type: scheduler.CheckHTTP, Path: "/healthz", Interval: time.Second, Timeout: 2 * time.Second}}}}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := r.Destroy(ctx, rel.App); err != nil {
				t.Errorf("destroy: %v", err)
			}
		})
		began := time.Now()
		if err := r.Start(ctx, rel); err != nil {
			t.Fatal(err)
		}
		in := waitWeb(ctx, t, r, rel.App, agents.NodeName, 2*time.Minute)
		t.Logf("web.1 healthy over HTTPS %.1fs after Start", time.Since(began).Seconds())
		err = wait.For(ctx, "a log line", 30*time.Second, 250*time.Millisecond, func(ctx context.Context) error {
			var lines []string
			err := r.Logs(ctx, rel.App, scheduler.LogOptions{Tail: 10}, func(l scheduler.LogLine) { lines = append(lines, l.Text) })
			if err != nil {
				return err
			}
			if len(lines) == 0 {
				return errors.New("no lines yet")
			}
			return nil
		})
		if err != nil {
			t.Errorf("logs of %s over HTTPS: %v", in.Name(), err)
		}
	})

	other := nomadtest.NewTLS(t) // another CA
	for _, tc := range []struct {
		name              string
		nomad, consul     TLS
		agentAddr, reason string
	}{
		{"nomad wrong CA", TLS{CACert: other.CAFile}, ca, agents.NomadAddr, "CA file " + other.CAFile},
		{"nomad wrong name", TLS{CACert: files.CAFile, ServerName: "nomad.example.com"}, ca, agents.NomadAddr, `"nomad.example.com"`},
		{"consul wrong CA", ca, TLS{CACert: other.CAFile}, agents.ConsulAddr, "CA file " + other.CAFile},
		{"consul system roots", ca, TLS{ServerName: "localhost"}, agents.ConsulAddr, "the system's roots"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRuntime(tc.nomad, tc.consul)
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			began := time.Now()
			// Consul is asked only about apps with instances: start a
			// release that needs no image to be asked about (it stays
			// pending, which is enough for Instances to ask Consul).
			var err error
			if tc.agentAddr == agents.ConsulAddr {
				rel := scheduler.Release{App: "tlsfail", Version: 1, Image: "berth-runtimetest:none",
					Processes: []scheduler.Process{{Name: "web", Count: 1, Check: scheduler.Check{Type: scheduler.CheckHTTP, Path: "/"}}}}
				good := newRuntime(ca, ca)
				if err := good.Start(ctx, rel); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					_ = good.Destroy(ctx, rel.App)
				})
				err = wait.For(ctx, "an allocation", 30*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
					_, err := r.Instances(ctx, rel.App)
					if err == nil {
						return errors.New("no allocation yet")
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				_, err = r.Instances(ctx, rel.App)
			} else {
				_, err = r.Instances(ctx, "shop")
			}
			t.Logf("error: %v", err)
			if err == nil {
				t.Fatal("Instances succeeded")
			}
			if took := time.Since(began); took > 20*time.Second {
				t.Errorf("took %s", took)
			}
			if errors.Is(err, scheduler.ErrUnavailable) {
				t.Errorf("a failed TLS handshake is ErrUnavailable: %v", err)
			}
			for _, want := range []string{tc.agentAddr, "TLS handshake failed", tc.reason} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
		})
	}
}

// TestTLSFiles: bad TLS files make New fail, naming the file; TLS options
// with a plain http:// address are refused.
func TestTLSFiles(t *testing.T) {
	files := nomadtest.NewTLS(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"missing CA", Config{NomadTLS: TLS{CACert: missing}}, []string{"Nomad CA file", missing, "no such file"}},
		{"garbage CA", Config{ConsulTLS: TLS{CACert: garbage}}, []string{"Consul CA file " + garbage, "no PEM certificate"}},
		{"cert without key", Config{NomadTLS: TLS{ClientCert: files.ClientCertFile}}, []string{"Nomad client certificate " + files.ClientCertFile, "no key file"}},
		{"key without cert", Config{ConsulTLS: TLS{ClientKey: files.ClientKeyFile}}, []string{"Consul client key " + files.ClientKeyFile, "no certificate file"}},
		{"key of another cert", Config{NomadTLS: TLS{ClientCert: files.ClientCertFile, ClientKey: files.KeyFile}},
			[]string{"Nomad client certificate " + files.ClientCertFile + " with key " + files.KeyFile}},
		{"garbage key", Config{NomadTLS: TLS{ClientCert: files.ClientCertFile, ClientKey: garbage}}, []string{garbage}},
		{"plain http nomad", Config{NomadAddr: "http://127.0.0.1:4646", NomadTLS: TLS{CACert: files.CAFile}}, []string{"plain HTTP", "https://"}},
		{"plain http consul", Config{ConsulAddr: "http://127.0.0.1:8500", ConsulTLS: TLS{InsecureSkipVerify: true}}, []string{"Consul address http://127.0.0.1:8500 is plain HTTP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.cfg)
			if err == nil {
				r.Close()
				t.Fatal("New accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// Defaults: TLS options make host:port (and the default address) https.
	cfg, err := Config{NomadTLS: TLS{CACert: files.CAFile}, ConsulAddr: "10.0.0.1:8501", ConsulTLS: TLS{CACert: files.CAFile}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NomadAddr != "https://127.0.0.1:4646" || cfg.ConsulAddr != "https://10.0.0.1:8501" {
		t.Errorf("addresses %s and %s, want https", cfg.NomadAddr, cfg.ConsulAddr)
	}
	if cfg, _ := (Config{ConsulAddr: "10.0.0.1:8500"}).withDefaults(); cfg.ConsulAddr != "10.0.0.1:8500" {
		t.Errorf("consul address without TLS changed to %s", cfg.ConsulAddr)
	}
}

// TestTLSClientCert: a Nomad that requires client certificates (Nomad's
// verify_https_client) accepts berth with ClientCert and ClientKey and
// refuses it without. An httptest server stands in for Nomad: a dev agent
// with verify_https_client would also require them from its own client and
// checks, which is beside the point here.
func TestTLSClientCert(t *testing.T) {
	files := nomadtest.NewTLS(t)
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/allocations" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	for _, tc := range []struct {
		name string
		tls  TLS
		ok   bool
	}{
		{"with client cert", TLS{CACert: files.CAFile, ClientCert: files.ClientCertFile, ClientKey: files.ClientKeyFile}, true},
		{"without client cert", TLS{CACert: files.CAFile}, false},
		{"skip verify", TLS{InsecureSkipVerify: true, ClientCert: files.ClientCertFile, ClientKey: files.ClientKeyFile}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Config{NomadAddr: srv.URL, NomadTLS: tc.tls, ConsulAddr: closedAddr(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			is, err := r.Instances(ctx, "shop")
			switch {
			case tc.ok && (err != nil || len(is) != 0):
				t.Fatalf("Instances: %v %v", is, err)
			case !tc.ok && err == nil:
				t.Fatal("Instances succeeded without a client certificate")
			case !tc.ok && (errors.Is(err, scheduler.ErrUnavailable) || !strings.Contains(err.Error(), "TLS handshake failed")):
				t.Errorf("refused handshake: %v, want a TLS error that is not ErrUnavailable", err)
			}
		})
	}
}
