// Package version holds berth's version string, set at build time with
// -ldflags "-X github.com/berthpaas/berth/internal/version.Version=...".
package version

// Version of this build.
var Version = "0.1.0-dev"
