package buildpacks

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseProcfile(t *testing.T) {
	in := "\uFEFF# processes\n" +
		"web: ./server --port $PORT\n" +
		"\n" +
		"  worker :  bin/worker -q default  \r\n" +
		"release: ./migrate up\n" +
		"clock-2_x: echo a:b:c\n"
	got, err := ParseProcfile(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Procfile{
		Processes: map[string]string{
			"web":       "./server --port $PORT",
			"worker":    "bin/worker -q default",
			"clock-2_x": "echo a:b:c",
		},
		Release: "./migrate up",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseProcfile (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"web", "clock-2_x", "worker"}, got.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
}

func TestParseProcfileEmpty(t *testing.T) {
	got, err := ParseProcfile(strings.NewReader("# nothing\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Processes) != 0 || got.Release != "" {
		t.Errorf("got %+v, want an empty Procfile", got)
	}
}

func TestParseProcfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"no colon", "web: ok\n\njust a command\n", []string{"line 3", `"name: command"`}},
		{"uppercase name", "Web: ./server\n", []string{"line 1", "[a-z][a-z0-9_-]{0,29}", `"name: command"`}},
		{"name starts with digit", "# c\n1web: x\n", []string{"line 2"}},
		{"name too long", strings.Repeat("a", 31) + ": x\n", []string{"line 1"}},
		{"space in name", "my web: x\n", []string{"line 1"}},
		{"empty name", ": x\n", []string{"line 1"}},
		{"empty command", "web:\n", []string{"line 1", "no command"}},
		{"duplicate", "web: a\nworker: b\nweb: c\n", []string{"line 3", `"web"`, "line 1"}},
		{"duplicate release", "release: a\nrelease: b\n", []string{"line 2", "release"}},
		{"line too long", "web: " + strings.Repeat("x", maxProcfileLine) + "\n", []string{"line 1", "longer than"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcfile(strings.NewReader(tc.in))
			if !errors.Is(err, ErrProcfile) {
				t.Fatalf("err = %v, want ErrProcfile", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidProcessName(t *testing.T) {
	for name, want := range map[string]bool{
		"web": true, "w": true, "worker-2": true, "a_b": true, strings.Repeat("a", 30): true,
		"": false, "Web": false, "2w": false, "-w": false, "w.x": false, strings.Repeat("a", 31): false,
	} {
		if got := ValidProcessName(name); got != want {
			t.Errorf("ValidProcessName(%q) = %v, want %v", name, got, want)
		}
	}
}
