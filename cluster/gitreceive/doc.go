// Package gitreceive serves git over SSH so that `git push berth main`
// deploys an app.
//
// Callers authenticate with a public key. A push to one of an app's deploy
// branches runs the build-and-deploy pipeline inside git's pre-receive hook,
// so a failed deploy rejects the push and leaves the branch where it was.
// Nothing on the host side goes through a shell: commands are parsed
// strictly, app names are validated before any file or process is touched,
// and every process is started with a fixed argument vector. See DESIGN.md.
package gitreceive
