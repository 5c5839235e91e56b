package gitreceive

import (
	"errors"
	"fmt"
	"strings"

	"github.com/berthpaas/berth/cluster/api"
)

// service is a git service the server runs.
type service string

const (
	receivePack service = "git-receive-pack" // push
	uploadPack  service = "git-upload-pack"  // fetch and clone
)

// maxCommand bounds the exec command line; a git command with the longest
// valid app name is under 60 bytes.
const maxCommand = 256

// errBadCommand is wrapped by every refusal of parseCommand.
var errBadCommand = errors.New("this server only runs git-receive-pack and git-upload-pack on <app>.git")

// parseCommand parses the command of an SSH exec request. It accepts only
// the forms git sends —
//
//	git-receive-pack 'web.git'    git-upload-pack '/web.git'
//	git receive-pack web.git      git-receive-pack 'web'
//
// — and returns the service and the validated app name. Nothing is
// unquoted or split beyond that: anything else is an error.
func parseCommand(cmd string) (service, string, error) {
	if len(cmd) > maxCommand {
		return "", "", fmt.Errorf("%w: the command is too long", errBadCommand)
	}
	for i := 0; i < len(cmd); i++ {
		if c := cmd[i]; c < 0x20 || c > 0x7e {
			return "", "", fmt.Errorf("%w: the command contains control or non-ASCII characters", errBadCommand)
		}
	}
	var svc service
	var arg string
	for _, form := range []struct {
		prefix string
		svc    service
	}{
		{"git-receive-pack ", receivePack},
		{"git receive-pack ", receivePack},
		{"git-upload-pack ", uploadPack},
		{"git upload-pack ", uploadPack},
	} {
		if rest, ok := strings.CutPrefix(cmd, form.prefix); ok {
			svc, arg = form.svc, rest
			break
		}
	}
	if svc == "" {
		return "", "", errBadCommand
	}
	// One optional pair of single quotes around the whole argument, as git
	// quotes it; a quote anywhere else is refused.
	if len(arg) >= 2 && arg[0] == '\'' && arg[len(arg)-1] == '\'' {
		arg = arg[1 : len(arg)-1]
	}
	if strings.ContainsAny(arg, "' \t") {
		return "", "", fmt.Errorf("%w: expected one repository argument like '<app>.git'", errBadCommand)
	}
	// "ssh://host/web.git" sends "/web.git"; "host:web.git" sends "web.git".
	name := strings.TrimPrefix(arg, "/")
	name = strings.TrimSuffix(name, ".git")
	if err := api.ValidateAppName(name); err != nil {
		return "", "", fmt.Errorf("repository %q: %w", clip(arg), err)
	}
	return svc, name, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
