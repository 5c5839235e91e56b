// Package registry embeds an OCI distribution registry (distribution/v3) with
// filesystem storage in a berth server, so builds push images to, and agents
// pull releases from, the cluster itself.
//
// The registry serves the ordinary /v2/ API: a plain `docker push` and
// `docker pull` work against it. It has no authentication yet; it is meant to
// listen on loopback or a private network only (see DESIGN.md).
//
// Collect is how image retention follows the release history: the caller
// names, per repository, the manifest digests that must survive (the releases
// it keeps); everything else in those repositories is deleted and the
// unreferenced blobs are garbage-collected with distribution's own
// mark-and-sweep, while pushes wait.
package registry
