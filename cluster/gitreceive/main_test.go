package gitreceive

import (
	"context"
	"os"
	"testing"
)

// TestMain lets the test binary stand in for `berth git-hook pre-receive`:
// the server's default HookBinary is os.Executable(), which in a test is
// this binary, so the hooks of every test push run RunHook from here.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "git-hook" && os.Args[2] == "pre-receive" {
		os.Exit(RunHook(context.Background(), os.Stdin, os.Stderr, os.Environ()))
	}
	os.Exit(m.Run())
}
