package server

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfigFileRejectsUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var c Config
	if err := c.LoadFile(write(`{"name":"s1","raft":{"heartbeat_timeout":"250ms"}}`)); err != nil {
		t.Fatal(err)
	}
	if c.Name != "s1" || time.Duration(c.Raft.HeartbeatTimeout) != 250*time.Millisecond {
		t.Fatalf("loaded %+v", c)
	}
	for body, want := range map[string]string{
		`{"nmae":"s1"}`:                         `unknown field "nmae"`,
		`{"raft":{"heartbeat":"1s"}}`:           `unknown field "heartbeat"`,
		`{"raft":{"heartbeat_timeout":"soon"}}`: "invalid duration",
		`{"bootstrap_expect":"three"}`:          "cannot unmarshal",
	} {
		var c Config
		err := c.LoadFile(write(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadFile(%s) = %v, want an error containing %q", body, err, want)
		}
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	c := Config{DataDir: "/var/lib/berth", Name: "s1"}
	if err := c.applyDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Bind != DefaultBind || c.RaftBind != DefaultRaftBind || c.Advertise != DefaultBind || c.BootstrapExpect != 1 {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		c    Config
		want string
	}{
		{Config{Name: "s1"}, "--data-dir is required"},
		{Config{Name: "s1", DataDir: "rel/dir"}, "absolute path"},
		{Config{Name: "s1", DataDir: "/d", Bind: "nope"}, "--bind"},
		{Config{Name: "s1", DataDir: "/d", Bind: "0.0.0.0:4880"}, "--advertise"},
		{Config{Name: "s1", DataDir: "/d", BootstrapExpect: 3}, "needs --join"},
		{Config{Name: "s1", DataDir: "/d", BootstrapExpect: 9, Join: []string{"x:1"}}, "use 1, 3 or 5"},
		{Config{Name: "s1", DataDir: "/d", Dev: true, Join: []string{"x:1"}}, "drop --join"},
	}
	for _, b := range bad {
		c := b.c
		if err := c.applyDefaults(); err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Validate(%+v) = %v, want %q", b.c, err, b.want)
		}
	}
}

// TestConfigNomadTLS: the nomad section takes the TLS files of Nomad and
// Consul, and a server with a TLS file that cannot be read fails to start
// its runtime with an error naming the file.
func TestConfigNomadTLS(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	body := `{"runtime":"nomad","nomad":{"addr":"nomad.internal:4646","ca_cert":"/etc/nomad/ca.pem",
		"client_cert":"/etc/nomad/cli.pem","client_key":"/etc/nomad/cli-key.pem","tls_server_name":"server.global.nomad",
		"consul_ca_cert":"/etc/consul/ca.pem","consul_client_cert":"/etc/consul/c.pem","consul_client_key":"/etc/consul/k.pem",
		"consul_tls_server_name":"server.dc1.consul","consul_skip_verify":true}}`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := c.LoadFile(p); err != nil {
		t.Fatal(err)
	}
	want := NomadConfig{Addr: "nomad.internal:4646", CACert: "/etc/nomad/ca.pem", ClientCert: "/etc/nomad/cli.pem",
		ClientKey: "/etc/nomad/cli-key.pem", TLSServerName: "server.global.nomad",
		ConsulCACert: "/etc/consul/ca.pem", ConsulClientCert: "/etc/consul/c.pem", ConsulClientKey: "/etc/consul/k.pem",
		ConsulTLSServerName: "server.dc1.consul", ConsulSkipVerify: true}
	if !reflect.DeepEqual(c.Nomad, want) {
		t.Fatalf("nomad config %+v, want %+v", c.Nomad, want)
	}

	missing := filepath.Join(dir, "missing-ca.pem")
	for _, n := range []NomadConfig{{CACert: missing}, {ConsulCACert: missing}} {
		s := &Server{cfg: Config{Runtime: "nomad", Nomad: n}, log: slog.New(slog.DiscardHandler)}
		if _, err := s.startRuntime(context.Background()); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("startRuntime with %+v: %v, want an error naming %s", n, err, missing)
		}
	}
}
