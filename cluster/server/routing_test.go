package server

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/state"
)

func TestDomains(t *testing.T) {
	s, c := startDev(t)
	raw := newAPIRaw(t, s)
	ctx := apiTestCtx(t)
	for _, app := range []string{"alpha", "beta"} {
		if _, err := c.CreateApp(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	d, err := c.AddDomain(ctx, "alpha", "WWW.Example.COM.")
	if err != nil {
		t.Fatalf("add domain: %v", err)
	}
	if d.Name != "www.example.com" || d.App != "alpha" {
		t.Fatalf("added %+v, want www.example.com of alpha (normalised)", d)
	}
	if _, err := c.AddDomain(ctx, "alpha", "www.example.com"); err != nil {
		t.Fatalf("adding the same domain again to its app: %v, want a no-op", err)
	}
	if _, err := c.AddDomain(ctx, "alpha", "*.example.com"); err != nil {
		t.Fatalf("add wildcard: %v", err)
	}
	_, err = c.AddDomain(ctx, "beta", "www.example.com")
	checkClientError(t, "domain of another app", err, http.StatusConflict, api.CodeConflict)
	if err == nil || !strings.Contains(err.Error(), "belongs to app alpha") {
		t.Fatalf("conflict error %v does not name the owner", err)
	}
	for _, bad := range []string{"", "example", "http://example.com", "example.com:443", "a.*.example.com", "*.*.example.com",
		"-bad.example.com", "ex ample.com", "127.0.0.1", "x_y.example.com", strings.Repeat("a", 64) + ".com"} {
		_, err := c.AddDomain(ctx, "beta", bad)
		checkClientError(t, "domain "+bad, err, http.StatusBadRequest, api.CodeInvalidName)
	}
	// The dev apps domain is localhost: APP.localhost names are automatic.
	_, err = c.AddDomain(ctx, "beta", "alpha.localhost")
	checkClientError(t, "a name under the apps domain", err, http.StatusConflict, api.CodeConflict)
	_, err = c.AddDomain(ctx, "nope", "nope.example.org")
	checkClientError(t, "domain of a missing app", err, http.StatusNotFound, api.CodeNotFound)

	ds, _, err := c.Domains(ctx, "alpha", nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range ds {
		names = append(names, d.Name)
	}
	if !slices.Equal(names, []string{"*.example.com", "www.example.com"}) {
		t.Fatalf("alpha's domains %v", names)
	}
	err = c.RemoveDomain(ctx, "beta", "www.example.com")
	checkClientError(t, "removing another app's domain", err, http.StatusNotFound, api.CodeNotFound)
	if err := c.RemoveDomain(ctx, "alpha", "www.example.com"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := c.AddDomain(ctx, "beta", "www.example.com"); err != nil {
		t.Fatalf("a removed domain can go to another app: %v", err)
	}
	// Destroying an app frees its domains.
	if err := c.DestroyApp(ctx, "beta"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateApp(ctx, "gamma"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AddDomain(ctx, "gamma", "www.example.com"); err != nil {
		t.Fatalf("domain of a destroyed app: %v", err)
	}
	r := raw.do(t, apiCall{method: "POST", path: "/v1/apps/gamma/domains", body: `{"domain": 5}`})
	checkErrorReply(t, r, http.StatusBadRequest, api.CodeBadRequest)
	entries, _, err := c.Audit(ctx, api.AuditQuery{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || (e.Action == "domains.add" && e.App == "gamma" && e.Detail == "www.example.com")
	}
	if !found {
		t.Fatal("no audit entry for domains.add")
	}
}

func TestRoutesAndRouterRole(t *testing.T) {
	s, c := startDev(t)
	ctx := apiTestCtx(t)
	if _, err := c.CreateApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(ctx, api.TokenCreateRequest{Name: "edge", Role: api.RoleRouter})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateToken(ctx, api.TokenCreateRequest{Name: "edge2", Role: api.RoleRouter, Apps: []string{"web"}})
	checkClientError(t, "router token with apps", err, http.StatusBadRequest, api.CodeBadRequest)
	rc := c.WithToken(tok.Secret)
	tbl, meta, err := rc.Routes(ctx, &api.QueryOptions{Stale: true})
	if err != nil {
		t.Fatalf("router reads routes: %v", err)
	}
	if tbl.AppsDomain != "localhost" || len(tbl.Routes) != 1 || tbl.Routes[0].App != "web" || tbl.Routes[0].Release != 0 {
		t.Fatalf("routes %+v", tbl)
	}
	if apps, _, err := rc.Apps(ctx, nil); err != nil || len(apps) != 0 {
		t.Fatalf("a router token sees apps %v (err %v), want none", apps, err)
	}
	_, _, err = rc.Config(ctx, "web", nil)
	checkClientError(t, "router reads config", err, http.StatusForbidden, api.CodeForbidden)
	view, err := c.CreateToken(ctx, api.TokenCreateRequest{Name: "view", Role: api.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.WithToken(view.Secret).Routes(ctx, nil)
	checkClientError(t, "viewer reads routes", err, http.StatusForbidden, api.CodeForbidden)
	err = c.WithToken(view.Secret).CertPut(ctx, "x", []byte("y"))
	checkClientError(t, "viewer writes certs", err, http.StatusForbidden, api.CodeForbidden)

	// A blocking read wakes on a domain and on HTTPS settings.
	got := make(chan *api.RouteTable, 1)
	go func() {
		tb, _, err := rc.Routes(ctx, &api.QueryOptions{Stale: true, WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
		if err != nil {
			tb = nil
		}
		got <- tb
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if _, err := c.AddDomain(ctx, "web", "web.example.com"); err != nil {
		t.Fatal(err)
	}
	select {
	case tbl = <-got:
		if tbl == nil || len(tbl.Routes) != 1 || !slices.Equal(tbl.Routes[0].Hosts, []string{"web.example.com"}) {
			t.Fatalf("woken with %+v", tbl)
		}
		t.Logf("blocking routes query woke %s after the domain was added", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("the blocking routes query did not wake on a new domain")
	}
	yes := true
	if _, err := c.UpdateApp(ctx, "web", api.AppUpdateRequest{ForceHTTPS: &yes, HSTS: &yes}); err != nil {
		t.Fatal(err)
	}
	tbl, _, err = rc.Routes(ctx, nil)
	if err != nil || !tbl.Routes[0].ForceHTTPS || !tbl.Routes[0].HSTS {
		t.Fatalf("routes after force_https: %+v %v", tbl, err)
	}
	app, _, err := c.App(ctx, "web", nil)
	if err != nil || app.WebURL != "http://web.localhost:8080/" || !app.ForceHTTPS || app.LB != "round_robin" {
		t.Fatalf("app %+v %v: want web URL http://web.localhost:8080/, force_https and round_robin", app, err)
	}
	lc, bogus := "least_conn", "random"
	if _, err := c.UpdateApp(ctx, "web", api.AppUpdateRequest{LB: &lc}); err != nil {
		t.Fatal(err)
	}
	if tbl, _, err = rc.Routes(ctx, nil); err != nil || tbl.Routes[0].LB != "least_conn" {
		t.Fatalf("routes after lb=least_conn: %+v %v", tbl, err)
	}
	_, err = c.UpdateApp(ctx, "web", api.AppUpdateRequest{LB: &bogus})
	checkClientError(t, "unknown lb policy", err, http.StatusBadRequest, api.CodeBadRequest)

	t.Run("router acknowledgement", func(t *testing.T) {
		// No router reported: nothing to wait for.
		if err := s.waitRouters(ctx, "web", 1); err != nil {
			t.Fatalf("no routers: %v", err)
		}
		if err := rc.ReportRouter(ctx, "edge-1", api.RouterReport{Name: "edge", Applied: 1}); err != nil {
			t.Fatal(err)
		}
		s.cfg.RouterAckTimeout = Duration(300 * time.Millisecond)
		err := s.waitRouters(ctx, "web", 1)
		if err == nil || !strings.Contains(err.Error(), "edge (serves index 1)") {
			t.Fatalf("a router behind: %v, want a timeout naming it", err)
		}
		target := s.node.FSM().State().Snapshot().RoutesIndex(nil)
		s.cfg.RouterAckTimeout = Duration(10 * time.Second)
		done := make(chan error, 1)
		go func() { done <- s.waitRouters(ctx, "web", 1) }()
		time.Sleep(100 * time.Millisecond)
		if err := rc.ReportRouter(ctx, "edge-1", api.RouterReport{Name: "edge", Applied: target}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("after the router caught up: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waitRouters did not return when the router reported the cutover's index")
		}
		rs, _, err := rc.Routers(ctx, nil)
		if err != nil || len(rs) != 1 || rs[0].Applied != target {
			t.Fatalf("routers %+v %v", rs, err)
		}
	})
}

func TestCertStorage(t *testing.T) {
	s, c := startDev(t)
	ctx := apiTestCtx(t)
	tok, err := c.CreateToken(ctx, api.TokenCreateRequest{Name: "edge", Role: api.RoleRouter})
	if err != nil {
		t.Fatal(err)
	}
	rc := c.WithToken(tok.Secret)
	secret := []byte("-----BEGIN EC PRIVATE KEY-----\nsecret key material\n")
	key := "certificates/acme/example.com/example.com.key"
	if err := rc.CertPut(ctx, key, secret); err != nil {
		t.Fatalf("put: %v", err)
	}
	if err := rc.CertPut(ctx, "certificates/acme/example.com/example.com.crt", []byte("crt")); err != nil {
		t.Fatal(err)
	}
	if err := rc.CertPut(ctx, "acme/account.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	e, err := rc.CertGet(ctx, key)
	if err != nil || !bytes.Equal(e.Value, secret) || e.Size != len(secret) || e.Modified.IsZero() {
		t.Fatalf("get: %+v %v", e, err)
	}
	// Sealed in the replicated state: the plaintext never reaches raft.
	stored, err := s.node.FSM().State().Snapshot().Cert(key)
	if err != nil || bytes.Contains(stored.Value, []byte("secret key material")) {
		t.Fatalf("stored value is not sealed: %q %v", stored.Value, err)
	}
	list, err := rc.CertList(ctx, "certificates/")
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := rc.CertDelete(ctx, "certificates/acme/example.com"); err != nil {
		t.Fatalf("delete a directory: %v", err)
	}
	if list, _ := rc.CertList(ctx, ""); len(list) != 1 || list[0].Key != "acme/account.json" {
		t.Fatalf("after deleting the directory: %+v", list)
	}
	_, err = rc.CertGet(ctx, key)
	checkClientError(t, "get a deleted key", err, http.StatusNotFound, api.CodeNotFound)
	err = rc.CertDelete(ctx, "nothing/here")
	checkClientError(t, "delete a missing key", err, http.StatusNotFound, api.CodeNotFound)
	err = rc.CertPut(ctx, "a b/c", []byte("x"))
	checkClientError(t, "key with a space", err, http.StatusBadRequest, api.CodeBadRequest)
	err = rc.CertPut(ctx, "big", make([]byte, api.MaxCertValue+1))
	checkClientError(t, "oversize value", err, http.StatusRequestEntityTooLarge, api.CodeTooLarge)

	// Locks: one owner at a time, renewable, expiring.
	if err := rc.CertLock(ctx, "issue_cert_example.com", "router-a", 2*time.Second); err != nil {
		t.Fatalf("lock: %v", err)
	}
	err = rc.CertLock(ctx, "issue_cert_example.com", "router-b", time.Minute)
	checkClientError(t, "lock held by another", err, http.StatusConflict, api.CodeConflict)
	if err := rc.CertLock(ctx, "issue_cert_example.com", "router-a", 2*time.Second); err != nil {
		t.Fatalf("renew own lock: %v", err)
	}
	if err := rc.CertUnlock(ctx, "issue_cert_example.com", "router-b"); err != nil {
		t.Fatalf("unlocking a lock one does not hold is a no-op: %v", err)
	}
	err = rc.CertLock(ctx, "issue_cert_example.com", "router-b", time.Minute)
	checkClientError(t, "lock still held after another's unlock", err, http.StatusConflict, api.CodeConflict)
	if err := rc.CertUnlock(ctx, "issue_cert_example.com", "router-a"); err != nil {
		t.Fatal(err)
	}
	if err := rc.CertLock(ctx, "issue_cert_example.com", "router-b", time.Second); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := rc.CertLock(ctx, "issue_cert_example.com", "router-a", time.Minute); err != nil {
		t.Fatalf("an expired lock is taken over: %v", err)
	}
	err = rc.CertLock(ctx, "x", "router-a", time.Millisecond)
	checkClientError(t, "ttl too short", err, http.StatusBadRequest, api.CodeBadRequest)
}

func TestEndpointsFollowState(t *testing.T) {
	s, c := startDev(t)
	ctx := apiTestCtx(t)
	if _, err := c.CreateApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	apply := func(cmd fsm.Command) {
		t.Helper()
		if _, _, err := s.node.Apply(cmd); err != nil {
			t.Fatal(err)
		}
	}
	apply(fsm.EndpointsSet{App: "web", Release: 1, Addrs: []string{"127.0.0.1:2", "127.0.0.1:1"}})
	before := s.node.FSM().State().Snapshot().RoutesIndex(nil)
	apply(fsm.EndpointsSet{App: "web", Release: 1, Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}})
	if after := s.node.FSM().State().Snapshot().RoutesIndex(nil); after != before {
		t.Fatalf("the same endpoints again moved the routes index %d → %d (routers would wake for nothing)", before, after)
	}
	eps, _, err := s.node.FSM().State().Snapshot().Endpoints(nil)
	if err != nil || !slices.Equal(eps["web"][1], []string{"127.0.0.1:1", "127.0.0.1:2"}) {
		t.Fatalf("endpoints %v %v", eps, err)
	}
	// Routes show the active release's endpoints only; none is active yet.
	tbl, _, err := c.Routes(ctx, nil)
	if err != nil || len(tbl.Routes[0].Upstreams) != 0 {
		t.Fatalf("routes before any cutover: %+v %v", tbl, err)
	}
	apply(fsm.EndpointsSet{App: "web", Release: 1})
	eps, _, _ = s.node.FSM().State().Snapshot().Endpoints(nil)
	if _, ok := eps["web"][1]; ok {
		t.Fatal("nil addrs did not delete the endpoints")
	}
	if _, _, err := s.node.Apply(fsm.EndpointsSet{App: "gone", Release: 1, Addrs: []string{"127.0.0.1:1"}}); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("endpoints of a missing app: %v", err)
	}
}
