package router

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"sync/atomic"
	"weak"

	"github.com/caddyserver/caddy/v2"
)

// instance is the Go-side half of a Router: the things a JSON config cannot
// carry (the Source, loggers, the metrics registry). The App finds it
// through Caddy's own module registry: New registers a module named
// berth.instances.<random id> whose constructor returns this instance, and
// the App's JSON config holds that id. See DESIGN.md for why.
type instance struct {
	source    Source
	logger    *slog.Logger
	accessLog io.Writer
	metrics   *metrics

	app atomic.Pointer[App] // the running App, set by Start
}

const instanceModulePrefix = "berth.instances."

// instanceModule is what the registry hands out; it only carries the pointer.
type instanceModule struct {
	inst *instance
	id   string
	ref  weak.Pointer[instance]
}

// CaddyModule returns the Caddy module information. The constructor holds a
// weak pointer, so a registry entry never keeps a stopped Router alive.
func (m *instanceModule) CaddyModule() caddy.ModuleInfo {
	ref := m.ref
	return caddy.ModuleInfo{
		ID:  caddy.ModuleID(instanceModulePrefix + m.id),
		New: func() caddy.Module { return &instanceModule{inst: ref.Value(), id: m.id, ref: ref} },
	}
}

// registerInstance makes inst loadable by id from Caddy config.
func registerInstance(inst *instance) string {
	var b [12]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	caddy.RegisterModule(&instanceModule{id: id, ref: weak.Make(inst)})
	return id
}
