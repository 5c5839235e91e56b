package archtest

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Doc        string
	Standard   bool
	Deps       []string
	Name       string
}

func listPackages(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-json"}, patterns...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestAPIImportsOnlyStdlib: cluster/api is what outsiders import; it must
// not drag in the control plane or any third-party module.
func TestAPIImportsOnlyStdlib(t *testing.T) {
	pkgs := listPackages(t, "github.com/berthpaas/berth/cluster/api")
	if len(pkgs) != 1 {
		t.Fatalf("go list returned %d packages", len(pkgs))
	}
	std := map[string]bool{}
	for _, p := range listPackages(t, "std") {
		std[p.ImportPath] = true
	}
	for _, d := range pkgs[0].Deps {
		if !std[d] && !strings.HasPrefix(d, "vendor/") && !strings.HasPrefix(d, "internal/") {
			t.Errorf("cluster/api depends on %s; it may import only the standard library", d)
		}
	}
}

// TestEveryPackageHasADocComment.
func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t, "github.com/berthpaas/berth/...") {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment", p.ImportPath)
		}
	}
}
