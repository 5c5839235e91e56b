// Package router is berth's HTTP router: berth code inside Caddy.
//
// A Caddy App module ("berth") owns an atomically swapped route table
// (host → app → active release → upstreams) and the goroutine that keeps it
// current from a Source; a lean proxy handler of berth's own reads that table
// on every request, and a reverse_proxy upstream source module
// ("http.reverse_proxy.upstreams.berth") lets a stock reverse_proxy read it
// too. Route changes, instance changes and cutovers swap the table in memory
// and never reload Caddy's config. The last table is kept on disk so a
// router restarted while its source is down still serves.
//
// Router is the Go API the agent uses: New builds the Caddy JSON config
// itself, Start runs it, WaitForRelease tells the deployer that a cutover is
// live. See DESIGN.md for why it is shaped this way.
package router
