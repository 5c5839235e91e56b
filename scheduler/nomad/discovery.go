package nomad

import (
	"strconv"

	"github.com/berthpaas/berth/scheduler"
)

var _ scheduler.ConsulDiscovery = (*Runtime)(nil)

// ConsulService names the Consul service routers watch for an app's
// process (passing checks only) and the tag of one release.
func (r *Runtime) ConsulService(app, process string, release uint64) (service, tag string) {
	return serviceName(app, process), "release=" + strconv.FormatUint(release, 10)
}
