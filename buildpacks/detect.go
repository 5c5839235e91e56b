package buildpacks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Plan is what a build will do.
type Plan struct {
	// Kind is the detected app type: KindDockerfile, KindGo, KindNode,
	// KindPython or KindStatic.
	Kind string
	// Dockerfile is the Dockerfile to build: the user's own, or one
	// generated over the stack image.
	Dockerfile []byte
	// Procfile is the parsed Procfile (empty if none). For generated builds
	// a default web process is filled in when the Procfile has none; for a
	// user Dockerfile without a web process the image's own CMD is the web
	// process.
	Procfile Procfile
}

// The kinds of app Detect recognises, in the order it looks for them.
const (
	KindDockerfile = "dockerfile"
	KindGo         = "go"
	KindNode       = "node"
	KindPython     = "python"
	KindStatic     = "static"
)

// DefaultStack is the base image of generated Dockerfiles when
// DetectOptions.Stack is empty: what anyone can pull. It has no language
// toolchain; generated Dockerfiles install the Debian packages they need
// (golang-go, nodejs, npm, python3, python3-pip) when the stack lacks them.
const DefaultStack = "debian:bookworm"

// DetectOptions configures Detect.
type DetectOptions struct {
	// Stack is the base image of generated Dockerfiles; DefaultStack if
	// empty. Any Debian-based image works; one that already has the
	// toolchain (e.g. golang:1.26-bookworm) skips the apt-get step.
	Stack string
}

// ErrUndetected is wrapped when Detect finds nothing it knows how to build.
var ErrUndetected = errors.New("cannot detect the app type")

// ErrNoWebProcess is wrapped when a generated build has neither a Procfile
// nor a conventional entry point to start.
var ErrNoWebProcess = errors.New("no web process")

// maxManifest bounds the files Detect reads (Dockerfile, Procfile,
// package.json, ...); real ones are far smaller.
const maxManifest = 1 << 20

var stackRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}$`)

// Detect looks at the root of the source tree in dir and plans its build.
// The first match wins: a Dockerfile is built as it is; otherwise go.mod
// (Go), package.json (Node.js), requirements.txt or pyproject.toml
// (Python), index.html or public/ (static) select a generated Dockerfile
// over opts.Stack. Nothing matching is an error wrapping ErrUndetected.
func Detect(dir string, opts DetectOptions) (*Plan, error) {
	stack := opts.Stack
	if stack == "" {
		stack = DefaultStack
	}
	if !stackRE.MatchString(stack) {
		return nil, fmt.Errorf("detect: stack %q is not an image reference", stack)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	defer root.Close()
	t := tree{root: root}

	procfile := Procfile{Processes: map[string]string{}}
	if t.isFile("Procfile") {
		data, err := t.read("Procfile")
		if err != nil {
			return nil, err
		}
		if procfile, err = ParseProcfile(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}

	if t.isFile("Dockerfile") {
		data, err := t.read("Dockerfile")
		if err != nil {
			return nil, err
		}
		return &Plan{Kind: KindDockerfile, Dockerfile: data, Procfile: procfile}, nil
	}

	var g generated
	switch {
	case t.isFile("go.mod"):
		g, err = planGo(t)
	case t.isFile("package.json"):
		g, err = planNode(t, procfile)
	case t.isFile("requirements.txt") || t.isFile("pyproject.toml"):
		g, err = planPython(t)
	case t.isFile("index.html") || t.isDir("public"):
		g = planStatic(t)
	default:
		return nil, fmt.Errorf("%w: no Dockerfile, go.mod, package.json, requirements.txt, pyproject.toml, index.html or public/ at the repository root", ErrUndetected)
	}
	if err != nil {
		return nil, err
	}
	if _, ok := procfile.Processes["web"]; !ok {
		switch {
		case g.defaultWeb != "":
			procfile.Processes["web"] = g.defaultWeb
		case len(procfile.Processes) == 0:
			return nil, fmt.Errorf("%w: %s app: add a Procfile with a \"web: <command>\" line, or %s", ErrNoWebProcess, g.kind, g.webHint)
		}
	}
	g.stack = stack
	g.web = procfile.Processes["web"]
	df, err := g.render()
	if err != nil {
		return nil, err
	}
	return &Plan{Kind: g.kind, Dockerfile: df, Procfile: procfile}, nil
}

// tree reads the source tree without following symlinks out of it.
type tree struct{ root *os.Root }

func (t tree) isFile(name string) bool {
	fi, err := t.root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

func (t tree) isDir(name string) bool {
	fi, err := t.root.Stat(name)
	return err == nil && fi.IsDir()
}

func (t tree) read(name string) ([]byte, error) {
	f, err := t.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxManifest+1)); err != nil {
		return nil, fmt.Errorf("detect: read %s: %w", name, err)
	}
	if buf.Len() > maxManifest {
		return nil, fmt.Errorf("detect: %s is larger than %s", name, humanBytes(maxManifest))
	}
	return buf.Bytes(), nil
}

var safeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// planGo builds the module's main package: the root if it is package main,
// else every cmd/<name> that is. The binaries go to /app/bin, on PATH.
func planGo(t tree) (generated, error) {
	g := generated{kind: KindGo, webHint: "put package main at the module root or in cmd/<name>/"}
	data, err := t.read("go.mod")
	if err != nil {
		return g, err
	}
	g.goBinary = binaryName(modulePath(data))
	g.goVendor = t.isDir("vendor")
	g.goSum = t.isFile("go.sum")
	switch cmds := mainPackagesUnder(t, "cmd"); {
	case isMainPackage(t, "."):
		g.goBuild = "-o /out/bin/" + g.goBinary + " ."
		g.defaultWeb = "/app/bin/" + g.goBinary
	case len(cmds) > 0:
		g.goBuild = "-o /out/bin/ ./cmd/..."
		if len(cmds) == 1 {
			g.defaultWeb = "/app/bin/" + cmds[0]
		} else {
			g.webHint = "say which of cmd/" + strings.Join(cmds, ", cmd/") + " serves the web"
		}
	default:
		g.goBuild = "-o /out/bin/" + g.goBinary + " ."
		g.defaultWeb = "/app/bin/" + g.goBinary // go build will say what is wrong
	}
	return g, nil
}

// modulePath returns the module path of a go.mod, "" if there is none.
func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
			rest, _, _ = strings.Cut(rest, "//")
			return strings.Trim(strings.TrimSpace(rest), "\"`")
		}
	}
	return ""
}

var majorVersionRE = regexp.MustCompile(`^v[0-9]+$`)

// binaryName is the module's last path element ("example.com/x/v2" → "x"),
// or "app" if that is not a safe file name.
func binaryName(module string) string {
	parts := strings.Split(module, "/")
	name := parts[len(parts)-1]
	if majorVersionRE.MatchString(name) && len(parts) > 1 {
		name = parts[len(parts)-2]
	}
	if !safeNameRE.MatchString(name) {
		return "app"
	}
	return name
}

// isMainPackage reports whether the directory holds a non-test Go file
// declaring package main.
func isMainPackage(t tree, dir string) bool {
	entries, err := fs.ReadDir(t.root.FS(), dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := t.read(path.Join(dir, name))
		if err != nil {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.PackageClauseOnly)
		if err == nil && f.Name.Name == "main" {
			return true
		}
	}
	return false
}

// mainPackagesUnder lists the subdirectories of dir that are main packages.
func mainPackagesUnder(t tree, dir string) []string {
	entries, err := fs.ReadDir(t.root.FS(), dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && safeNameRE.MatchString(e.Name()) && isMainPackage(t, path.Join(dir, e.Name())) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

type packageJSON struct {
	Main            string            `json:"main"`
	Scripts         map[string]string `json:"scripts"`
	Dependencies    map[string]string `json:"dependencies"`
	DevDependencies map[string]string `json:"devDependencies"`
}

// planNode installs dependencies with npm only when there are some (so an
// app without dependencies needs no npm at all) and starts `npm start`,
// server.js, index.js or package.json's main.
func planNode(t tree, procfile Procfile) (generated, error) {
	g := generated{kind: KindNode, webHint: "add a \"start\" script to package.json, or a server.js or index.js"}
	data, err := t.read("package.json")
	if err != nil {
		return g, err
	}
	var pkg packageJSON
	if err := json.Unmarshal(data, &pkg); err != nil {
		return g, fmt.Errorf("detect: package.json is not valid JSON: %w", err)
	}
	lock := t.isFile("package-lock.json") || t.isFile("npm-shrinkwrap.json")
	g.nodeBuild = pkg.Scripts["build"] != ""
	g.nodeInstall = len(pkg.Dependencies) > 0 || (g.nodeBuild && len(pkg.DevDependencies) > 0)
	g.nodeCI = lock
	switch {
	case pkg.Scripts["start"] != "":
		g.defaultWeb = "npm start"
	case t.isFile("server.js"):
		g.defaultWeb = "node server.js"
	case t.isFile("index.js"):
		g.defaultWeb = "node index.js"
	case pkg.Main != "" && t.isFile(path.Clean(pkg.Main)) && safeArgRE.MatchString(pkg.Main):
		g.defaultWeb = "node " + path.Clean(pkg.Main)
	}
	web := procfile.Processes["web"]
	if web == "" {
		web = g.defaultWeb
	}
	g.nodeNPM = g.nodeInstall || g.nodeBuild || usesNPM(web) || usesNPM(procfile.Release)
	for _, cmd := range procfile.Processes {
		g.nodeNPM = g.nodeNPM || usesNPM(cmd)
	}
	return g, nil
}

var safeArgRE = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

func usesNPM(cmd string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(cmd), " ")
	return first == "npm" || first == "npx"
}

// planPython installs requirements.txt when it lists anything and the
// project itself when there is a pyproject.toml, and runs app.py or main.py.
func planPython(t tree) (generated, error) {
	g := generated{kind: KindPython, webHint: "add an app.py or main.py"}
	if t.isFile("requirements.txt") {
		data, err := t.read("requirements.txt")
		if err != nil {
			return g, err
		}
		g.pyRequirements = listsRequirements(data)
	}
	g.pyProject = t.isFile("pyproject.toml")
	switch {
	case t.isFile("app.py"):
		g.defaultWeb = "python3 app.py"
	case t.isFile("main.py"):
		g.defaultWeb = "python3 main.py"
	}
	return g, nil
}

// listsRequirements reports whether a requirements file has any line that
// is not blank or a comment.
func listsRequirements(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// planStatic serves public/ if there is one, else the whole tree, with
// Python's http.server (the stack needs python3).
func planStatic(t tree) generated {
	return generated{
		kind:         KindStatic,
		staticPublic: t.isDir("public"),
		defaultWeb:   `python3 -m http.server "$PORT" --bind 0.0.0.0 --directory /app/public`,
	}
}
