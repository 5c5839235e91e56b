package router

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTableLookup(t *testing.T) {
	tab, err := NewTable([]Route{
		{App: "web", Release: 3, Hosts: []string{"Example.com", "*.example.com"}, Upstreams: []string{"10.0.0.1:80"}},
		{App: "api", Release: 1, Hosts: []string{"api.example.com"}, Upstreams: []string{"10.0.0.2:80"}},
		{App: "docs", Release: 2},
	}, "apps.test")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"example.com":          "web",
		"EXAMPLE.com:8080":     "web",
		"www.example.com":      "web",
		"api.example.com":      "api", // exact beats wildcard
		"a.b.example.com":      "",    // one label only, as in TLS
		"web.apps.test":        "web",
		"docs.apps.test.":      "docs",
		"docs.apps.test:443":   "docs",
		"apps.test":            "",
		"nope.test":            "",
		"":                     "",
		"[::1]:80":             "",
		"x.docs.apps.test":     "",
		"example.com.evil.com": "",
	} {
		rt, ok := tab.Lookup(host)
		if ok != (want != "") || rt.App != want {
			t.Errorf("Lookup(%q) = %q %v, want %q", host, rt.App, ok, want)
		}
	}
	if got := tab.Len(); got != 3 {
		t.Errorf("Len = %d", got)
	}
	if diff := cmp.Diff([]string{"api", "docs", "web"}, appNames(tab.Routes())); diff != "" {
		t.Errorf("Routes not sorted by app (-want +got):\n%s", diff)
	}
	if rt, ok := tab.App("web"); !ok || rt.Release != 3 || rt.LB != LBRoundRobin {
		t.Errorf("App(web) = %+v %v", rt, ok)
	}
}

func appNames(rs []Route) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.App)
	}
	return out
}

// TestTableKeepsGoodRoutes: one bad route must not take the others down.
func TestTableKeepsGoodRoutes(t *testing.T) {
	tab, err := NewTable([]Route{
		{App: "good", Hosts: []string{"good.test"}, Upstreams: []string{"127.0.0.1:1"}},
		{App: "Bad Name"},
		{App: "badhost", Hosts: []string{"a..b"}},
		{App: "badup", Upstreams: []string{"nope"}},
		{App: "badlb", LB: "random"},
		{App: "thief", Hosts: []string{"good.test"}},
		{App: "good", Hosts: []string{"other.test"}},
	}, "")
	if !errors.Is(err, ErrInvalidRoute) {
		t.Fatalf("err = %v, want ErrInvalidRoute", err)
	}
	if diff := cmp.Diff([]string{"good", "thief"}, appNames(tab.Routes())); diff != "" {
		t.Errorf("apps (-want +got):\n%s", diff)
	}
	if rt, _ := tab.Lookup("good.test"); rt.App != "good" {
		t.Errorf("good.test → %q, want the first claimant", rt.App)
	}
	if _, ok := tab.Lookup("other.test"); ok {
		t.Error("the second entry for app good should be ignored")
	}
}

// TestTableIsACopy: changing the slices given to NewTable or returned by it
// never changes the table.
func TestTableIsACopy(t *testing.T) {
	in := []Route{{App: "a", Hosts: []string{"a.test"}, Upstreams: []string{"127.0.0.1:1"}}}
	tab, _ := NewTable(in, "")
	in[0].Hosts[0] = "b.test"
	out := tab.Routes()
	out[0].Upstreams[0] = "127.0.0.1:2"
	if rt, ok := tab.Lookup("a.test"); !ok || rt.Upstreams[0] != "127.0.0.1:1" {
		t.Errorf("table changed through a caller's slice: %+v", rt)
	}
}

func TestPick(t *testing.T) {
	tab, _ := NewTable([]Route{
		{App: "rr", Upstreams: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}},
		{App: "lc", LB: LBLeastConn, Upstreams: []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}},
	}, "")
	rr := tab.apps["rr"]
	seen := map[string]int{}
	for range 30 {
		seen[rr.pick(0, nil).addr]++
	}
	for _, u := range rr.ups {
		if seen[u.addr] != 10 {
			t.Errorf("round robin: %v", seen)
			break
		}
	}

	// Passive health: a marked upstream is skipped while others are fine,
	// and used as a last resort.
	rr.ups[0].markDown(0, 1e9)
	for range 10 {
		if u := rr.pick(1, nil); u == rr.ups[0] {
			t.Fatal("picked an upstream marked down")
		}
	}
	if u := rr.pick(1, []*upstream{rr.ups[1], rr.ups[2]}); u != rr.ups[0] {
		t.Errorf("with the healthy ones tried, got %v, want the marked one as a last resort", u)
	}
	if u := rr.pick(1, rr.ups); u != nil {
		t.Errorf("with all tried, got %v, want nil", u.addr)
	}

	lc := tab.apps["lc"]
	lc.ups[0].inflight.Store(5)
	lc.ups[1].inflight.Store(1)
	lc.ups[2].inflight.Store(3)
	for range 5 {
		if u := lc.pick(0, nil); u != lc.ups[1] {
			t.Fatalf("least conn picked %s", u.addr)
		}
	}
}

func TestRequestHost(t *testing.T) {
	for in, want := range map[string]string{
		"a.test": "a.test", "A.Test:80": "a.test", "a.test.": "a.test",
		"[::1]:80": "::1", "[::1]": "::1", "127.0.0.1:8080": "127.0.0.1",
	} {
		if got := requestHost(in); got != want {
			t.Errorf("requestHost(%q) = %q, want %q", in, got, want)
		}
	}
}
