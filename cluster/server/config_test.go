package server

import (
	"os"
	"path/filepath"
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
