package gitreceive

import (
	"strings"
	"testing"
)

func TestRunHookRefusesOutsideTheServer(t *testing.T) {
	var stderr strings.Builder
	in := strings.NewReader(strings.Repeat("0", 40) + " " + strings.Repeat("a", 40) + " refs/heads/main\n")
	if code := RunHook(t.Context(), in, &stderr, []string{"PATH=/usr/bin:/bin"}); code == 0 {
		t.Error("hook without the server's environment accepted a push")
	}
	if !strings.Contains(stderr.String(), "only through the berth git server") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestRunHookPlansRefUpdates(t *testing.T) {
	zero, a, b := strings.Repeat("0", 40), strings.Repeat("a", 40), strings.Repeat("b", 40)
	env := []string{"BERTH_HOOK_SOCKET=/nonexistent/hook.sock", "BERTH_HOOK_TOKEN=t", "BERTH_APP=web",
		"BERTH_DEPLOY_BRANCHES=main master"}
	for _, tc := range []struct {
		name  string
		input string
		code  int
		want  string
	}{
		{"other branch", zero + " " + a + " refs/heads/feature\n", 0,
			"branch feature stored, not deployed (deploy branches: main, master)"},
		{"tag", zero + " " + a + " refs/tags/v1\n", 0, "refs/tags/v1 stored"},
		{"delete other branch", a + " " + zero + " refs/heads/old\n", 0, "branch old deleted"},
		{"delete deploy branch", a + " " + zero + " refs/heads/master\n", 1,
			"branch master deploys web and cannot be deleted"},
		{"two deploy branches", zero + " " + a + " refs/heads/main\n" + zero + " " + b + " refs/heads/master\n", 1,
			"push one deploy branch at a time"},
		{"garbage", "hello; id\n", 1, "unexpected input from git"},
		{"server gone", zero + " " + a + " refs/heads/main\n", 1, "cannot reach the berth server"},
	} {
		var stderr strings.Builder
		code := RunHook(t.Context(), strings.NewReader(tc.input), &stderr, env)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: code %d, stderr %q; want %d and %q", tc.name, code, stderr.String(), tc.code, tc.want)
		}
	}
}
