package scheduler

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalid wraps every refusal of a malformed release or name.
var ErrInvalid = errors.New("invalid release")

// Names reach the runtimes' engines (container names, job IDs, label
// filters, service names); they are checked here even though the API checks
// them first, so a runtime is safe on its own. The patterns are those of
// cluster/api and Procfiles.
var (
	appRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	processRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,29}$`)
)

// ValidateApp checks an app name.
func ValidateApp(app string) error {
	if !appRE.MatchString(app) {
		return fmt.Errorf("%w: app name %q", ErrInvalid, app)
	}
	return nil
}

// ValidateProcess checks a process type name.
func ValidateProcess(name string) error {
	if !processRE.MatchString(name) {
		return fmt.Errorf("%w: process name %q", ErrInvalid, name)
	}
	return nil
}

// ValidateRelease checks what a runtime is asked to run.
func ValidateRelease(rel Release) error {
	if err := ValidateApp(rel.App); err != nil {
		return err
	}
	if rel.Image == "" {
		return fmt.Errorf("%w: %s v%d has no image", ErrInvalid, rel.App, rel.Version)
	}
	seen := map[string]bool{}
	for _, p := range rel.Processes {
		if err := ValidateProcess(p.Name); err != nil {
			return err
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: process %q twice", ErrInvalid, p.Name)
		}
		seen[p.Name] = true
		if p.Count < 0 || p.MemoryMB < 0 || p.CPU < 0 {
			return fmt.Errorf("%w: process %q has a negative count or limit", ErrInvalid, p.Name)
		}
		t := p.Check.Type
		if t == "" {
			t = DefaultCheck(p.Name).Type
		}
		switch t {
		case CheckHTTP, CheckTCP, CheckNone:
		default:
			return fmt.Errorf("%w: process %q has check type %q", ErrInvalid, p.Name, p.Check.Type)
		}
	}
	return nil
}
