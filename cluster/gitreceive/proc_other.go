//go:build !unix

package gitreceive

import "os/exec"

// setProcessGroup: without process groups, cancellation kills git only
// (exec.CommandContext's default).
func setProcessGroup(*exec.Cmd) {}
