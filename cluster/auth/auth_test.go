package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthpaas/berth/cluster/api"
)

func TestRoles(t *testing.T) {
	admin := &Identity{Name: "root", Role: api.RoleAdmin}
	dep := &Identity{Name: "ci", Role: api.RoleDeployer, Apps: []string{"web"}}
	depAll := &Identity{Name: "ci-all", Role: api.RoleDeployer, Apps: []string{api.AllApps}}
	view := &Identity{Name: "ro", Role: api.RoleViewer}
	viewOne := &Identity{Name: "ro1", Role: api.RoleViewer, Apps: []string{"web"}}
	router := &Identity{Name: "edge", Role: api.RoleRouter}
	cases := []struct {
		id     *Identity
		action Action
		app    string
		want   bool
	}{
		{admin, ManageCluster, "", true},
		{admin, ReadSecrets, "web", true},
		{dep, WriteApp, "web", true},
		{dep, ReadSecrets, "web", true},
		{dep, WriteApp, "api", false},
		{dep, ReadApp, "api", false},
		{dep, ManageApps, "web", false},
		{dep, ManageCluster, "", false},
		{depAll, WriteApp, "anything", true},
		{view, ReadApp, "web", true},
		{view, ReadSecrets, "web", false},
		{view, WriteApp, "web", false},
		{viewOne, ReadApp, "web", true},
		{viewOne, ReadApp, "api", false},
		{&Identity{Role: "bogus"}, ReadApp, "web", false},
		{admin, RouteTraffic, "", true},
		{router, RouteTraffic, "", true},
		{router, ReadApp, "web", false},
		{router, ManageCluster, "", false},
		{dep, RouteTraffic, "", false},
		{depAll, RouteTraffic, "", false},
		{view, RouteTraffic, "", false},
	}
	for _, c := range cases {
		if got := c.id.Allowed(c.action, c.app); got != c.want {
			t.Errorf("%s(%s).Allowed(%v, %q) = %v, want %v", c.id.Name, c.id.Role, c.action, c.app, got, c.want)
		}
	}
	err := dep.Check(WriteApp, "api")
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), `"api"`) {
		t.Fatalf("Check error = %v", err)
	}
}

func TestSecretsAreUniqueAndHashed(t *testing.T) {
	s1, a1, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	s2, a2, _ := NewSecret()
	if s1 == s2 || a1 == a2 || !strings.HasPrefix(s1, "berth_") {
		t.Fatalf("secrets %q %q accessors %q %q", s1, s2, a1, a2)
	}
	if HashSecret(s1) == s1 || HashSecret(s1) != HashSecret(s1) || HashSecret(s1) == HashSecret(s2) {
		t.Fatal("HashSecret is not a stable one-way map")
	}
}

func TestValidateRole(t *testing.T) {
	for _, c := range []struct {
		role string
		apps []string
		ok   bool
	}{
		{"admin", nil, true}, {"admin", []string{"web"}, false},
		{"deployer", nil, false}, {"deployer", []string{"web"}, true}, {"deployer", []string{"*"}, true},
		{"deployer", []string{"../x"}, false}, {"viewer", nil, true}, {"root", nil, false},
		{"router", nil, true}, {"router", []string{"web"}, false},
	} {
		if err := ValidateRole(c.role, c.apps); (err == nil) != c.ok {
			t.Errorf("ValidateRole(%q, %v) = %v", c.role, c.apps, err)
		}
	}
}
