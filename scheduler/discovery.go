package scheduler

// ConsulDiscovery is implemented by runtimes whose instances routers find
// in Consul themselves (nomad): the Consul service of an app's process and
// the tag that selects one release. Runtimes without it (docker) have the
// control plane publish their healthy instances to routers instead.
type ConsulDiscovery interface {
	ConsulService(app, process string, release uint64) (service, tag string)
}
