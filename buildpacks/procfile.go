package buildpacks

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Procfile is an app's list of process types, Heroku-style: one
// "name: command" line per process.
type Procfile struct {
	// Processes maps a process name to its command, e.g. "web" → "./server".
	Processes map[string]string
	// Release is the optional `release:` command, run once per release
	// before any process starts. It is not a process and so is not in
	// Processes.
	Release string
}

// ErrProcfile is wrapped by every error ParseProcfile returns for malformed
// input.
var ErrProcfile = errors.New("invalid Procfile")

// ReleaseProcess is the Procfile name of the release command.
const ReleaseProcess = "release"

// maxProcfileLine bounds one Procfile line; real ones are a few dozen bytes.
const maxProcfileLine = 64 << 10

var processNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,29}$`)

// ValidProcessName reports whether name is acceptable as a process type:
// a lowercase letter followed by up to 29 lowercase letters, digits, '_' or
// '-'. Names end up in container, job and DNS names, so they are kept small.
func ValidProcessName(name string) bool { return processNameRE.MatchString(name) }

// ParseProcfile reads a Procfile. Blank lines and lines starting with '#' are
// ignored; every other line must be "name: command". Errors name the line
// number and wrap ErrProcfile.
func ParseProcfile(r io.Reader) (Procfile, error) {
	p := Procfile{Processes: map[string]string{}}
	seen := map[string]int{} // name → line it was defined on
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxProcfileLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF") // editors on Windows add a BOM
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		name, cmd = strings.TrimSpace(name), strings.TrimSpace(cmd)
		switch {
		case !ok:
			return Procfile{}, fmt.Errorf("%w: line %d: %q is not of the form \"name: command\"", ErrProcfile, n, line)
		case !ValidProcessName(name):
			return Procfile{}, fmt.Errorf("%w: line %d: process name %q must match [a-z][a-z0-9_-]{0,29} (expected \"name: command\")", ErrProcfile, n, name)
		case cmd == "":
			return Procfile{}, fmt.Errorf("%w: line %d: process %q has no command (expected \"name: command\")", ErrProcfile, n, name)
		}
		if first, dup := seen[name]; dup {
			return Procfile{}, fmt.Errorf("%w: line %d: process %q is already defined on line %d", ErrProcfile, n, name, first)
		}
		seen[name] = n
		if name == ReleaseProcess {
			p.Release = cmd
		} else {
			p.Processes[name] = cmd
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Procfile{}, fmt.Errorf("%w: line %d is longer than %d bytes", ErrProcfile, n+1, maxProcfileLine)
		}
		return Procfile{}, fmt.Errorf("read Procfile: %w", err)
	}
	return p, nil
}

// Names returns the process names in a stable order: "web" first, then the
// others alphabetically.
func (p Procfile) Names() []string {
	names := make([]string, 0, len(p.Processes))
	for name := range p.Processes {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "web") != (names[j] == "web") {
			return names[i] == "web"
		}
		return names[i] < names[j]
	})
	return names
}
