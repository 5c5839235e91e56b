package main

import (
	"io"
	"strings"
	"testing"
)

func TestReorderArgs(t *testing.T) {
	app := newApp(strings.NewReader(""), io.Discard, io.Discard)
	cases := []struct{ in, want string }{
		{"berth apps destroy web --confirm web", "berth apps destroy --confirm web web"},
		{"berth config get KEY -a web", "berth config get -a web KEY"},
		{"berth config set -a web A=1 B=2", "berth config set -a web A=1 B=2"},
		{"berth login --addr 1.2.3.4:1", "berth --addr 1.2.3.4:1 login"},
		{"berth apps list --json", "berth apps list --json"},
		{"berth --json apps list", "berth --json apps list"},
		{"berth config set -a web X=-1", "berth config set -a web X=-1"},
		{"berth config set -a web -- -NOTAFLAG=1", "berth config set -a web -- -NOTAFLAG=1"},
		{"berth tokens create --name ci --role deployer --app web --app api", "berth tokens create --name ci --role deployer --app web --app api"},
		{"berth server --dev", "berth server --dev"},
	}
	for _, c := range cases {
		got := strings.Join(reorderArgs(app, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("reorderArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestAppFromRemote(t *testing.T) {
	for in, want := range map[string]string{
		"ssh://git@host:2222/web.git":  "web",
		"ssh://git@host:2222/web":      "web",
		"git@host:web.git":             "web",
		"ssh://git@[::1]:2222/api.git": "api",
	} {
		if got := appFromRemote(in); got != want {
			t.Errorf("appFromRemote(%q) = %q, want %q", in, got, want)
		}
	}
}
