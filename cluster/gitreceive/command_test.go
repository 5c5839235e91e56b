package gitreceive

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	ok := []struct {
		cmd string
		svc service
		app string
	}{
		{"git-receive-pack 'web.git'", receivePack, "web"},
		{"git-receive-pack '/web.git'", receivePack, "web"},
		{"git-receive-pack web.git", receivePack, "web"},
		{"git-receive-pack /web.git", receivePack, "web"},
		{"git-receive-pack 'web'", receivePack, "web"},
		{"git receive-pack 'my-app-2.git'", receivePack, "my-app-2"},
		{"git-upload-pack 'web.git'", uploadPack, "web"},
		{"git upload-pack '/web'", uploadPack, "web"},
	}
	for _, tc := range ok {
		svc, app, err := parseCommand(tc.cmd)
		if err != nil || svc != tc.svc || app != tc.app {
			t.Errorf("parseCommand(%q) = %q, %q, %v; want %q, %q", tc.cmd, svc, app, err, tc.svc, tc.app)
		}
	}
	bad := []string{
		"", "ls", "sh", "git-receive-pack", "git-receive-pack ", "git-receive-pack ''", "git-receive-pack '.git'",
		"git-receive-pack '../etc.git'", "git-receive-pack 'web;id.git'", "git-receive-pack 'Web.git'",
		"git-receive-pack 'a b.git'", "git-receive-pack 'web.git' extra", "git-receive-pack web.git extra",
		"git-receive-pack  web.git", "git-receive-pack 'web.git", "git-receive-pack web.git'",
		"git-receive-pack ''web.git''", "git-receive-pack \"web.git\"", "git-receive-pack 'web.git.git'",
		"git-receive-pack '//web.git'", "git-receive-pack '~/web.git'", "git-receive-pack 'a/web.git'",
		"git-receive-pack 'web.git\x00'", "git-receive-pack 'wéb.git'", "git-receive-pack '-web.git'",
		"git-receive-pack 'web-.git'", "git-upload-archive 'web.git'", "git-receive-packx 'web.git'",
		"GIT-RECEIVE-PACK 'web.git'", "git  receive-pack 'web.git'", "git-receive-pack\t'web.git'",
		"git-receive-pack '" + strings.Repeat("a", 300) + ".git'",
	}
	for _, cmd := range bad {
		if svc, app, err := parseCommand(cmd); err == nil {
			t.Errorf("parseCommand(%q) = %q, %q; want an error", cmd, svc, app)
		} else if !errors.Is(err, errBadCommand) && !strings.Contains(err.Error(), "invalid app name") {
			t.Errorf("parseCommand(%q): unexpected error %v", cmd, err)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	f.Add("git-receive-pack 'web.git'")
	f.Add("git upload-pack '/web'")
	f.Add("git-receive-pack '../x.git'")
	f.Fuzz(func(t *testing.T, cmd string) {
		_, app, err := parseCommand(cmd)
		if err != nil {
			return
		}
		// Whatever is accepted is a plain name: no path, quote or space.
		if strings.ContainsAny(app, "/.' \\;$`\"") || app == "" {
			t.Fatalf("parseCommand(%q) accepted app %q", cmd, app)
		}
	})
}
