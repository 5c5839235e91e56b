package buildpacks

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ent is one tar entry of a test stream.
type ent struct {
	name string
	typ  byte // tar.TypeReg if 0
	body string
	link string
	mode int64
}

func tarOf(t *testing.T, entries ...ent) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, ModTime: time.Unix(1700000000, 0)}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Typeflag == tar.TypeXGlobalHeader { // as git archive writes the commit id
			h = &tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "0123456789abcdef"}, Format: tar.FormatPAX}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// listTree describes dir: "name" for files (with "*" if executable),
// "name/" for directories, "name -> target" for symlinks.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case fi.IsDir():
			out = append(out, rel+"/")
		case fi.Mode()&0o111 != 0:
			out = append(out, rel+"*")
		default:
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestExtractContext(t *testing.T) {
	stream := tarOf(t,
		ent{typ: tar.TypeXGlobalHeader, name: "pax_global_header"},
		ent{name: "./", typ: tar.TypeDir, mode: 0o775},
		ent{name: "a/", typ: tar.TypeDir, mode: 0o775},
		ent{name: "a/b/c/deep.txt", body: "deep"}, // parents created on the way
		ent{name: "bin/run", body: "#!/bin/sh\n", mode: 0o775},
		ent{name: "README", body: "hello"},
		ent{name: "link-in", typ: tar.TypeSymlink, link: "a/b/c/deep.txt"},
		ent{name: "a/b/up", typ: tar.TypeSymlink, link: "../../README"},
		ent{name: "dangling", typ: tar.TypeSymlink, link: "not/yet/there"},
		ent{name: "hard", typ: tar.TypeLink, link: "README"},
		ent{name: "README", body: "replaced"}, // a later entry wins
	)
	dir := filepath.Join(t.TempDir(), "ctx") // created by ExtractContext
	if err := ExtractContext(stream, dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README", "a/", "a/b/", "a/b/c/", "a/b/c/deep.txt", "a/b/up -> ../../README",
		"bin/", "bin/run*", "dangling -> not/yet/there", "hard", "link-in -> a/b/c/deep.txt",
	}
	if diff := cmp.Diff(want, listTree(t, dir)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "README")); string(b) != "replaced" {
		t.Errorf("README = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "hard")); string(b) != "hello" {
		t.Errorf("hard = %q, want the content README had when it was linked", b)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "a/b/c/deep.txt")); !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("mtime = %v, want the tar's", fi.ModTime())
	}
}

func TestExtractContextSizeLimit(t *testing.T) {
	stream := tarOf(t, ent{name: "a", body: strings.Repeat("x", 600)}, ent{name: "b", body: strings.Repeat("x", 600)})
	err := ExtractContext(stream, t.TempDir(), 1000)
	if !errors.Is(err, ErrContextTooLarge) {
		t.Fatalf("err = %v, want ErrContextTooLarge", err)
	}
	for _, w := range []string{"1000 B", `"b"`, "raise"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	// Exactly at the limit is fine.
	if err := ExtractContext(tarOf(t, ent{name: "a", body: strings.Repeat("x", 1000)}), t.TempDir(), 1000); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	if err := ExtractContext(tarOf(t), t.TempDir(), 0); err == nil {
		t.Error("maxBytes 0 accepted")
	}
	if got := humanBytes(512 << 20); got != "512.0 MiB" {
		t.Errorf("humanBytes = %q", got)
	}
}

func TestExtractContextUnsafe(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []ent
		want    string
	}{
		{"dotdot", []ent{{name: "../x", body: "x"}}, "'..'"},
		{"dotdot inside", []ent{{name: "a/../../x", body: "x"}}, "'..'"},
		{"dotdot dir", []ent{{name: "a/../", typ: tar.TypeDir}}, "'..'"},
		{"absolute", []ent{{name: "/etc/passwd", body: "x"}}, "absolute"},
		{"symlink absolute", []ent{{name: "pw", typ: tar.TypeSymlink, link: "/etc/passwd"}}, "absolute"},
		{"symlink escapes", []ent{{name: "a/l", typ: tar.TypeSymlink, link: "../../x"}}, "outside"},
		{"symlink to parent", []ent{{name: "l", typ: tar.TypeSymlink, link: ".."}}, "outside"},
		{"empty symlink", []ent{{name: "l", typ: tar.TypeSymlink, link: ""}}, "empty"},
		{
			// Each link stays inside on its own; followed together they
			// climb above the root.
			"symlink chain escapes",
			[]ent{
				{name: "a/b/c/", typ: tar.TypeDir},
				{name: "a/b/c/e", typ: tar.TypeSymlink, link: "../s/../.."}, // lexically a/
				{name: "a/b/s", typ: tar.TypeSymlink, link: "../.."},        // lexically the root
			},
			"resolves outside",
		},
		{"symlink loop", []ent{{name: "x", typ: tar.TypeSymlink, link: "y"}, {name: "y", typ: tar.TypeSymlink, link: "x"}}, "too many"},
		{
			"write through symlink",
			[]ent{{name: "sub/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "sub"}, {name: "l/f", body: "x"}},
			"through the symlink",
		},
		{
			"dir over symlink",
			[]ent{{name: "sub/", typ: tar.TypeDir}, {name: "l", typ: tar.TypeSymlink, link: "sub"}, {name: "l/", typ: tar.TypeDir}},
			"replace a file or symlink",
		},
		{"fifo", []ent{{name: "f", typ: tar.TypeFifo}}, "device or fifo"},
		{"char device", []ent{{name: "null", typ: tar.TypeChar}}, "device or fifo"},
		{"block device", []ent{{name: "sda", typ: tar.TypeBlock}}, "device or fifo"},
		{"hard link out", []ent{{name: "h", typ: tar.TypeLink, link: "../etc/passwd"}}, "'..'"},
		{"hard link absolute", []ent{{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}}, "absolute"},
		{"hard link to missing", []ent{{name: "h", typ: tar.TypeLink, link: "nope"}}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "ctx")
			err := ExtractContext(tarOf(t, tc.entries...), dir, 1<<20)
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			// Nothing was written beside the context directory.
			if entries, _ := os.ReadDir(parent); len(entries) != 1 {
				t.Errorf("the parent directory holds %d entries, want only ctx", len(entries))
			}
		})
	}
}

// A file entry never writes through an existing symlink of the same name:
// the link is replaced.
func TestExtractContextReplacesLink(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(outside, []byte("safe"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if err := ExtractContext(tarOf(t, ent{name: "f", body: "pwned"}), dir, 1<<20); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "safe" {
		t.Errorf("the file outside was overwritten: %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "f")); !fi.Mode().IsRegular() {
		t.Errorf("f is %v, want a regular file", fi.Mode())
	}
}

func TestExtractContextBadStream(t *testing.T) {
	stream := tarOf(t, ent{name: "a", body: strings.Repeat("x", 2000)})
	truncated := bytes.NewReader(stream.Bytes()[:1024])
	if err := ExtractContext(truncated, t.TempDir(), 1<<20); err == nil {
		t.Error("truncated stream accepted")
	}
}

// readTar lists a tar stream as name → content ("-> target" for symlinks,
// "/" for directories).
func readTar(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			out[h.Name] = "/"
		case tar.TypeSymlink:
			out[h.Name] = "-> " + h.Linkname
		default:
			b, _ := io.ReadAll(tr)
			out[h.Name] = string(b)
		}
	}
}

func TestWriteContext(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"app.py":              "print()",
		".dockerignore":       "# secrets\n.env\n/node_modules\n**/*.log\nbuild\n!build/keep.txt\ndocs/*.md\n",
		".env":                "SECRET=1",
		"node_modules/x/a.js": "",
		"sub/debug.log":       "",
		"build/out.bin":       "",
		"build/keep.txt":      "kept",
		"docs/a.md":           "",
		"docs/deep/b.md":      "deep",
		".berth.Dockerfile":   "the user's, replaced",
	})
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "pw")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := writeContext(context.Background(), &buf, dir, map[string][]byte{".berth.Dockerfile": []byte("FROM x\n")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"app.py":            "print()",
		".dockerignore":     readFile(t, dir, ".dockerignore"),
		"sub/":              "/",
		"build/keep.txt":    "kept",
		"docs/":             "/",
		"docs/deep/":        "/",
		"docs/deep/b.md":    "deep",
		"pw":                "-> /etc/passwd", // archived as a link, never followed
		".berth.Dockerfile": "FROM x\n",
	}
	if diff := cmp.Diff(want, readTar(t, &buf)); diff != "" {
		t.Errorf("context (-want +got):\n%s", diff)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := writeContext(ctx, io.Discard, dir, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDockerignore(t *testing.T) {
	d, err := parseDockerignore([]byte("*.tmp\n/secret\n**/cache\nlogs/**\n!logs/keep\nfoo/?ar\n[ab].txt\nesc\\*\n"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"x.tmp": true, "dir/x.tmp": false, // '*' stays within one element, anchored at the root
		"secret": true, "secret/inner": true, "a/secret": false,
		"cache": true, "a/b/cache": true, "a/b/cache/f": true, "cachex": false,
		"logs/a": true, "logs/keep": false,
		"foo/bar": true, "foo/car": true, "foo/bbar": false,
		"a.txt": true, "c.txt": false,
		"esc*": true, "escx": false,
		"main.go": false,
	} {
		if got := d.excludes(name); got != want {
			t.Errorf("excludes(%q) = %v, want %v", name, got, want)
		}
	}
	if _, err := parseDockerignore([]byte("ok\n[oops\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad pattern: err = %v", err)
	}
}
