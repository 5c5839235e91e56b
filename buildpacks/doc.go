// Package buildpacks turns an application's source tree into a container
// image.
//
// The flow is: ExtractContext unpacks the pushed tree (a tar stream, as
// `git archive` writes it) into a directory without letting it write outside
// that directory; Detect looks at the tree and returns a Plan: the app's own
// Dockerfile, or one generated over a base ("stack") image for Go, Node.js,
// Python and static sites, plus the parsed Procfile; a Builder runs the plan
// on a Docker engine, pushes the image to a registry, and runs one-off
// containers such as the Procfile's release command.
//
// The package imports nothing else from berth: it depends on the standard
// library and the Docker client only, and talks to Docker through the narrow
// DockerAPI interface so that callers can test against FakeDocker.
package buildpacks
