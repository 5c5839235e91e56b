package buildpacks

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

// dockerignore is a parsed .dockerignore. The Docker CLI, not the engine,
// applies .dockerignore when it archives a build context; berth archives the
// context itself, so it applies the file the same way: patterns in order,
// the last match wins, '!' re-includes, a pattern matching a directory
// excludes all below it, '*' and '?' stay within one path element and '**'
// spans any number of them.
type dockerignore struct {
	patterns []ignorePattern
}

type ignorePattern struct {
	re     *regexp.Regexp
	negate bool
}

func readDockerignore(root *os.Root) (*dockerignore, error) {
	data, err := root.ReadFile(".dockerignore")
	if errors.Is(err, fs.ErrNotExist) {
		return &dockerignore{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return parseDockerignore(data)
}

func parseDockerignore(data []byte) (*dockerignore, error) {
	d := &dockerignore{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		negate := strings.HasPrefix(line, "!")
		if negate {
			line = strings.TrimSpace(line[1:])
		}
		line = strings.TrimPrefix(path.Clean(line), "/")
		if line == "" || line == "." {
			continue
		}
		re, err := ignoreRegexp(line)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore line %d: %w", n, err)
		}
		d.patterns = append(d.patterns, ignorePattern{re: re, negate: negate})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return d, nil
}

// ignoreRegexp translates one pattern into an anchored regular expression.
func ignoreRegexp(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			if i+1 < len(p) && p[i+1] == '*' {
				i++
				if i+1 < len(p) && p[i+1] == '/' {
					i++
					b.WriteString("(.*/)?") // "**/" is zero or more directories
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '\\':
			if i+1 == len(p) {
				return nil, fmt.Errorf("pattern %q ends with a lone backslash", p)
			}
			i++
			b.WriteString(regexp.QuoteMeta(string(p[i])))
		case '[':
			end := strings.IndexByte(p[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("pattern %q has an unclosed '['", p)
			}
			class := p[i+1 : i+1+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", p, err)
	}
	return re, nil
}

// excludes reports whether the slash-separated relative name is left out of
// the context.
func (d *dockerignore) excludes(name string) bool {
	excluded := false
	for _, p := range d.patterns {
		if p.matches(name) {
			excluded = !p.negate
		}
	}
	return excluded
}

func (p ignorePattern) matches(name string) bool {
	if p.re.MatchString(name) {
		return true
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' && p.re.MatchString(name[:i]) {
			return true
		}
	}
	return false
}

// hasExceptions reports whether some '!' pattern could re-include a file
// inside an excluded directory, so that the directory must still be walked.
func (d *dockerignore) hasExceptions() bool {
	for _, p := range d.patterns {
		if p.negate {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
