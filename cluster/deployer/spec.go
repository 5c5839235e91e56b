package deployer

import (
	"fmt"
	"slices"
	"time"

	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/berthpaas/berth/scheduler"
)

// DefaultDeployTimeout bounds how long new instances have to become healthy.
const DefaultDeployTimeout = 60 * time.Second

// Spec turns a release of app into what a runtime runs: its image, opened
// config, and one process per type with the app's formation, resources and
// checks. A release without process types runs one "web" process with the
// image's own command.
func Spec(app *state.App, rel *state.Release, kr *secrets.Keyring) (scheduler.Release, error) {
	out := scheduler.Release{App: app.Name, Version: rel.Version, Image: rel.Image, Env: map[string]string{}}
	if len(rel.Config) > 0 && kr == nil {
		return out, fmt.Errorf("this server has no keyring to open %s's config", app.Name)
	}
	for k, sealed := range rel.Config {
		v, err := kr.Open(sealed, []byte(app.Name+"/"+k))
		if err != nil {
			return out, fmt.Errorf("open config %s of %s: %w", k, app.Name, err)
		}
		out.Env[k] = string(v)
	}
	procs := rel.Processes
	if len(procs) == 0 {
		procs = map[string]string{"web": ""}
	}
	names := make([]string, 0, len(procs))
	for n := range procs {
		names = append(names, n)
	}
	slices.Sort(names)
	formation := app.Formation
	if len(formation) == 0 {
		formation = map[string]int{"web": 1}
	}
	for _, n := range names {
		p := scheduler.Process{Name: n, Command: procs[n], Count: formation[n], Check: scheduler.DefaultCheck(n)}
		if r, ok := app.Resources[n]; ok {
			p.MemoryMB, p.CPU = r.MemoryMB, r.CPU
		}
		if c, ok := app.Checks[n]; ok {
			p.Check = scheduler.Check{Type: c.Type, Path: c.Path, Interval: c.Interval, Timeout: c.Timeout}
			if p.Check.Interval == 0 {
				p.Check.Interval = time.Second
			}
			if p.Check.Timeout == 0 {
				p.Check.Timeout = 2 * time.Second
			}
		}
		out.Processes = append(out.Processes, p)
	}
	return out, nil
}

// healthy reports whether every wanted instance of rel is up and healthy,
// and if not, why (the first instance that is not, with its last message).
func healthy(rel scheduler.Release, insts []scheduler.Instance) (bool, string, bool) {
	for _, p := range rel.Processes {
		n := 0
		for _, i := range insts {
			if i.Release != rel.Version || i.Process != p.Name || i.State == scheduler.StateStopping {
				continue
			}
			if i.State == scheduler.StateFailed || i.State == scheduler.StateExited {
				return false, fmt.Sprintf("%s %s: %s", i.Name(), i.State, orUnknown(i.Message)), true
			}
			if !i.Healthy {
				return false, fmt.Sprintf("%s is not healthy yet: %s", i.Name(), orUnknown(i.Message)), false
			}
			n++
		}
		if n < p.Count {
			return false, fmt.Sprintf("%d of %d %s instances are up", n, p.Count, p.Name), false
		}
	}
	return true, "", false
}

func orUnknown(s string) string {
	if s == "" {
		return "no check result yet"
	}
	return s
}
