package buildpacks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates files (name → content; a name ending in "/" is a
// directory) under a new temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func detect(t *testing.T, files map[string]string) *Plan {
	t.Helper()
	p, err := Detect(writeTree(t, files), DetectOptions{Stack: "example.org/stack:1"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func contains(t *testing.T, what, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, text)
		}
	}
}

func lacks(t *testing.T, what, text string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(text, w) {
			t.Errorf("%s contains %q:\n%s", what, w, text)
		}
	}
}

// Every generated Dockerfile shares these.
func commonChecks(t *testing.T, p *Plan) {
	t.Helper()
	df := string(p.Dockerfile)
	contains(t, p.Kind+" Dockerfile", df,
		"FROM example.org/stack:1\n", "WORKDIR /app\n", "ENV PORT=5000", "EXPOSE 5000\n", "USER app\n",
		`CMD ["/bin/sh","-c",`, "ARG BERTH_CA_CERTS\n", "update-ca-certificates")
	// The CA certificates are trusted before anything can be downloaded.
	if ca, apt := strings.Index(df, "update-ca-certificates; \\\n    fi; \\\n"), strings.Index(df, "if ! { command -v "); ca < 0 || apt < ca {
		t.Errorf("%s Dockerfile installs packages before trusting the CA certificates:\n%s", p.Kind, df)
	}
}

func TestDetectDockerfile(t *testing.T) {
	p := detect(t, map[string]string{
		"Dockerfile": "FROM scratch\n",
		"go.mod":     "module x\n", // the Dockerfile wins
		"Procfile":   "worker: ./w\nrelease: ./migrate\n",
	})
	if p.Kind != KindDockerfile || string(p.Dockerfile) != "FROM scratch\n" {
		t.Errorf("got kind %q, Dockerfile %q", p.Kind, p.Dockerfile)
	}
	// The image's own CMD is the web process: none is invented.
	if _, ok := p.Procfile.Processes["web"]; ok || p.Procfile.Processes["worker"] != "./w" || p.Procfile.Release != "./migrate" {
		t.Errorf("Procfile = %+v", p.Procfile)
	}
}

func TestDetectGo(t *testing.T) {
	p := detect(t, map[string]string{
		"go.mod":  "// comment\nmodule github.com/acme/shop/v2 // trailing\n\ngo 1.19\n",
		"go.sum":  "",
		"main.go": "package main\nfunc main() {}\n",
	})
	if p.Kind != KindGo {
		t.Fatalf("kind = %q", p.Kind)
	}
	commonChecks(t, p)
	df := string(p.Dockerfile)
	contains(t, "Go Dockerfile", df, "RUN CGO_ENABLED=0 go build", "ARG GOPROXY\n", "COPY go.mod go.sum ./\n", "RUN go mod download\n",
		"-o /out/bin/shop .", "golang-go", `CMD ["/bin/sh","-c","exec /app/bin/shop"]`, "COPY --from=build /out/bin/ /app/bin/")
	lacks(t, "Go Dockerfile", df, "-mod=vendor")
	if got := p.Procfile.Processes["web"]; got != "/app/bin/shop" {
		t.Errorf("default web = %q", got)
	}
}

func TestDetectGoVendorAndProcfile(t *testing.T) {
	p := detect(t, map[string]string{
		"go.mod":                "module example.com/x\n",
		"vendor/modules.txt":    "",
		"main.go":               "package main\n",
		"Procfile":              "web: x -http :$PORT\n",
		"internal/lib/lib.go":   "package lib\n",
		"cmd/ignored/readme.md": "",
	})
	df := string(p.Dockerfile)
	contains(t, "Go Dockerfile", df, "GOFLAGS=-mod=vendor", `"exec x -http :$PORT"`)
	lacks(t, "Go Dockerfile", df, "go mod download")
}

func TestDetectGoCmd(t *testing.T) {
	one := detect(t, map[string]string{
		"go.mod":            "module example.com/mono\n",
		"cmd/api/main.go":   "package main\n",
		"cmd/api/x_test.go": "package main_test\n",
		"lib.go":            "package mono\n",
	})
	contains(t, "Go Dockerfile", string(one.Dockerfile), "-o /out/bin/ ./cmd/...")
	if got := one.Procfile.Processes["web"]; got != "/app/bin/api" {
		t.Errorf("default web = %q, want /app/bin/api", got)
	}

	_, err := Detect(writeTree(t, map[string]string{
		"go.mod":            "module example.com/mono\n",
		"cmd/api/main.go":   "package main\n",
		"cmd/tool/main.go":  "package main\n",
		"cmd/notmain/x.go":  "package notmain\n",
		"pkg/thing/main.go": "package main\n",
	}), DetectOptions{})
	if !errors.Is(err, ErrNoWebProcess) || !strings.Contains(err.Error(), "cmd/api, cmd/tool") {
		t.Errorf("two commands and no Procfile: err = %v", err)
	}
}

func TestBinaryName(t *testing.T) {
	for mod, want := range map[string]string{
		"example.com/hello": "hello", "hello": "hello", "example.com/x/v2": "x", "v3": "v3",
		"": "app", "example.com/-bad": "app", "example.com/we ird": "app",
	} {
		if got := binaryName(mod); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", mod, got, want)
		}
	}
}

func TestDetectNode(t *testing.T) {
	bare := detect(t, map[string]string{"package.json": `{"name":"x"}`, "server.js": ""})
	if bare.Kind != KindNode {
		t.Fatalf("kind = %q", bare.Kind)
	}
	commonChecks(t, bare)
	df := string(bare.Dockerfile)
	contains(t, "Node Dockerfile", df, `"exec node server.js"`, "NODE_ENV=production")
	lacks(t, "Node Dockerfile", df, "npm") // nothing to install: no npm needed at all

	deps := detect(t, map[string]string{
		"package.json":      `{"scripts":{"start":"node app.js"},"dependencies":{"express":"^4"}}`,
		"package-lock.json": "{}",
	})
	df = string(deps.Dockerfile)
	contains(t, "Node Dockerfile", df, "nodejs npm", "COPY package.json package-lock.json* npm-shrinkwrap.json* ./\n",
		"RUN npm ci --omit=dev\n", `"exec npm start"`)

	nolock := detect(t, map[string]string{"package.json": `{"dependencies":{"a":"1"}}`, "index.js": ""})
	contains(t, "Node Dockerfile", string(nolock.Dockerfile), "RUN npm install --omit=dev\n", `"exec node index.js"`)

	build := detect(t, map[string]string{
		"package.json": `{"main":"dist/main.js","scripts":{"build":"tsc"},"devDependencies":{"typescript":"5"}}`,
		"dist/main.js": "",
	})
	contains(t, "Node Dockerfile", string(build.Dockerfile),
		"RUN npm install --include=dev && npm run build && npm prune --omit=dev\n", `"exec node dist/main.js"`)

	_, err := Detect(writeTree(t, map[string]string{"package.json": `{}`}), DetectOptions{})
	if !errors.Is(err, ErrNoWebProcess) || !strings.Contains(err.Error(), "start") {
		t.Errorf("node without entry point: err = %v", err)
	}
	_, err = Detect(writeTree(t, map[string]string{"package.json": `{`}), DetectOptions{})
	if err == nil || !strings.Contains(err.Error(), "package.json") {
		t.Errorf("bad package.json: err = %v", err)
	}
	// A worker-only app needs no web process.
	if _, err := Detect(writeTree(t, map[string]string{"package.json": `{}`, "Procfile": "worker: node w.js"}), DetectOptions{}); err != nil {
		t.Errorf("worker-only app: %v", err)
	}
}

func TestDetectPython(t *testing.T) {
	empty := detect(t, map[string]string{"requirements.txt": "# none\n\n", "app.py": ""})
	if empty.Kind != KindPython {
		t.Fatalf("kind = %q", empty.Kind)
	}
	commonChecks(t, empty)
	contains(t, "Python Dockerfile", string(empty.Dockerfile), `"exec python3 app.py"`, "PYTHONUNBUFFERED=1")
	lacks(t, "Python Dockerfile", string(empty.Dockerfile), "pip install", "python3-pip")

	reqs := detect(t, map[string]string{"requirements.txt": "flask==3.0\n", "main.py": ""})
	contains(t, "Python Dockerfile", string(reqs.Dockerfile), "COPY requirements.txt ./\n",
		"python3 -m pip install -r requirements.txt\n", "python3-pip", `"exec python3 main.py"`)

	proj := detect(t, map[string]string{"pyproject.toml": "[project]\nname='x'\n", "Procfile": "web: gunicorn x:app"})
	contains(t, "Python Dockerfile", string(proj.Dockerfile), "python3 -m pip install .\n", `"exec gunicorn x:app"`)

	_, err := Detect(writeTree(t, map[string]string{"requirements.txt": ""}), DetectOptions{})
	if !errors.Is(err, ErrNoWebProcess) || !strings.Contains(err.Error(), "app.py") {
		t.Errorf("python without entry point: err = %v", err)
	}
}

func TestDetectStatic(t *testing.T) {
	pub := detect(t, map[string]string{"public/": "", "README.md": ""})
	if pub.Kind != KindStatic {
		t.Fatalf("kind = %q", pub.Kind)
	}
	commonChecks(t, pub)
	contains(t, "static Dockerfile", string(pub.Dockerfile), "COPY public/ /app/public/\n", "python3 -m http.server")
	if got := pub.Procfile.Processes["web"]; !strings.Contains(got, `"$PORT"`) {
		t.Errorf("web = %q does not use $PORT", got)
	}

	root := detect(t, map[string]string{"index.html": "<h1>x</h1>"})
	contains(t, "static Dockerfile", string(root.Dockerfile), "COPY . /app/public/\n")
}

func TestDetectUndetected(t *testing.T) {
	dir := writeTree(t, map[string]string{"README.md": "", "src/main.go": "package main\n", "Procfile": "web: x\n"})
	_, err := Detect(dir, DetectOptions{})
	if !errors.Is(err, ErrUndetected) {
		t.Fatalf("err = %v, want ErrUndetected", err)
	}
	want := "no Dockerfile, go.mod, package.json, requirements.txt, pyproject.toml, index.html or public/ at the repository root"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if _, err := Detect(t.TempDir(), DetectOptions{}); !errors.Is(err, ErrUndetected) {
		t.Errorf("empty dir: err = %v, want ErrUndetected", err)
	}
}

func TestDetectOptions(t *testing.T) {
	dir := writeTree(t, map[string]string{"index.html": ""})
	p, err := Detect(dir, DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	contains(t, "Dockerfile", string(p.Dockerfile), "FROM "+DefaultStack+"\n")
	for _, bad := range []string{"debian bookworm", "x\nRUN rm -rf /", "-x", "a$b"} {
		if _, err := Detect(dir, DetectOptions{Stack: bad}); err == nil {
			t.Errorf("stack %q accepted", bad)
		}
	}
	// A bad Procfile stops detection.
	bad := writeTree(t, map[string]string{"index.html": "", "Procfile": "oops\n"})
	if _, err := Detect(bad, DetectOptions{}); !errors.Is(err, ErrProcfile) {
		t.Errorf("bad Procfile: err = %v", err)
	}
}

// Detect never reads through a symlink that leaves the tree.
func TestDetectSymlinkOut(t *testing.T) {
	outside := writeTree(t, map[string]string{"Dockerfile": "FROM secret\n"})
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(outside, "Dockerfile"), filepath.Join(dir, "Dockerfile")); err != nil {
		t.Fatal(err)
	}
	if _, err := Detect(dir, DetectOptions{}); !errors.Is(err, ErrUndetected) {
		t.Errorf("err = %v, want ErrUndetected (the escaping Dockerfile must be ignored)", err)
	}
}

func TestExecCommand(t *testing.T) {
	for in, want := range map[string]string{
		"./server":                       "exec ./server",
		"  node server.js --port $PORT ": "exec node server.js --port $PORT",
		"exec ./server":                  "exec ./server",
		"FOO=1 ./server":                 "FOO=1 ./server",
		"./migrate && ./server":          "./migrate && ./server",
		"./a; ./b":                       "./a; ./b",
		"./a | tee log":                  "./a | tee log",
		"./a > log":                      "./a > log",
		"(cd x && ./a)":                  "(cd x && ./a)",
		"if true; then x; fi":            "if true; then x; fi",
		"echo `date`":                    "echo `date`",
		"":                               "",
	} {
		if got := ExecCommand(in); got != want {
			t.Errorf("ExecCommand(%q) = %q, want %q", in, got, want)
		}
	}
}
