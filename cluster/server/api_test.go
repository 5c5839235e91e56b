package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// These tests drive a real single-server cluster (startDev) over HTTP: the
// typed client where it fits, raw net/http where the test needs control of
// bodies and headers.

// apiTestCtx is a context that bounds one test's calls.
func apiTestCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiNoAuth as apiCall.auth sends no Authorization header at all.
const apiNoAuth = "<none>"

// apiCall is one raw HTTP request.
type apiCall struct {
	method string
	path   string // with query, already escaped
	body   string // "" sends no body
	// chunked sends body as a reader of unknown length, so the request goes
	// out with chunked transfer encoding instead of a Content-Length.
	chunked bool
	// auth is the Authorization header: "" means the root token's bearer
	// header, apiNoAuth means none.
	auth string
}

// apiReply is a raw HTTP answer.
type apiReply struct {
	status int
	header http.Header
	body   []byte
}

// apiRaw talks to one server with net/http.
type apiRaw struct {
	base string // http://host:port
	root string // root token secret
}

func newAPIRaw(t *testing.T, s *Server) *apiRaw {
	t.Helper()
	root, _, err := s.DevRootToken(apiTestCtx(t))
	if err != nil {
		t.Fatalf("reading the dev root token: %v", err)
	}
	return &apiRaw{base: "http://" + s.APIAddr(), root: root}
}

// do sends c and returns the answer; transport errors are fatal.
func (a *apiRaw) do(t *testing.T, c apiCall) apiReply {
	t.Helper()
	var body io.Reader = http.NoBody
	if c.body != "" {
		body = strings.NewReader(c.body)
		if c.chunked {
			// Hide the concrete type so http.NewRequest cannot learn the length.
			body = struct{ io.Reader }{body}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.method, a.base+c.path, body)
	if err != nil {
		t.Fatalf("building %s %s: %v", c.method, c.path, err)
	}
	if c.chunked && req.ContentLength != 0 {
		t.Fatalf("%s %s: chunked request has Content-Length %d, want unknown", c.method, c.path, req.ContentLength)
	}
	switch c.auth {
	case "":
		req.Header.Set("Authorization", "Bearer "+a.root)
	case apiNoAuth:
	default:
		req.Header.Set("Authorization", c.auth)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: want an HTTP answer, got transport error %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", c.method, c.path, err)
	}
	return apiReply{status: resp.StatusCode, header: resp.Header, body: b}
}

// apiClip shortens a body for failure messages.
func apiClip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// checkErrorReply asserts r has the given status and exactly the body
// {"error":{"code":code,"message":"<non-empty>"}}.
func checkErrorReply(t *testing.T, r apiReply, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, apiClip(r.body))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&eb); err != nil || eb.Error == nil {
		t.Errorf(`body = %s, want JSON {"error":{"code":%q,"message":"..."}} (decode error: %v)`, apiClip(r.body), code, err)
		return
	}
	if dec.More() {
		t.Errorf("body = %s, want a single JSON object", apiClip(r.body))
	}
	if eb.Error.Code != code {
		t.Errorf("error code = %q, want %q (message %q)", eb.Error.Code, code, eb.Error.Message)
	}
	if strings.TrimSpace(eb.Error.Message) == "" {
		t.Errorf("error message is empty, want an explanation (body %s)", apiClip(r.body))
	}
}

// checkClientError asserts err is an *api.Error with status and code.
func checkClientError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var apiErr *api.Error
	if !errors.As(err, &apiErr) {
		t.Errorf("%s: error = %v, want an API error %d %s", what, err, status, code)
		return
	}
	if apiErr.Status != status || apiErr.Code != code {
		t.Errorf("%s: error = %d %s (%q), want %d %s", what, apiErr.Status, apiErr.Code, apiErr.Message, status, code)
	}
}

func appNames(apps []api.App) []string {
	names := []string{}
	for _, a := range apps {
		names = append(names, a.Name)
	}
	return names
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBadInput(t *testing.T) {
	s, c := startDev(t)
	raw := newAPIRaw(t, s)
	ctx := apiTestCtx(t)

	// The valid setup: one app with one config var, and a revoked token.
	const setupApp = "setup-app"
	if _, err := c.CreateApp(ctx, setupApp); err != nil {
		t.Fatalf("create %s: %v", setupApp, err)
	}
	if _, err := c.UpdateConfig(ctx, setupApp, api.ConfigUpdateRequest{Set: map[string]string{"KEEP": "original"}}); err != nil {
		t.Fatalf("set config of %s: %v", setupApp, err)
	}
	configBefore, _, err := c.Config(ctx, setupApp, nil)
	if err != nil {
		t.Fatalf("get config of %s: %v", setupApp, err)
	}
	revoked, err := c.CreateToken(ctx, api.TokenCreateRequest{Name: "soon-revoked", Role: api.RoleViewer})
	if err != nil {
		t.Fatalf("create viewer token: %v", err)
	}
	if err := c.RevokeToken(ctx, revoked.Name); err != nil {
		t.Fatalf("revoke viewer token: %v", err)
	}

	type tc struct {
		name   string
		call   apiCall
		status int
		code   string
	}
	var cases []tc

	badNames := []struct{ label, name string }{
		{"semicolon", "web;rm -rf /"},
		{"command substitution", "a$(id)"},
		{"backticks", "a`id`"},
		{"pipe", "a|b"},
		{"dot dot slash", "../etc"},
		{"escaped dot dot slash", "..%2Fetc"},
		{"accented", "café"},
		{"cyrillic a", "\u0430pp"},
		{"empty", ""},
		{"200 chars", strings.Repeat("a", 200)},
		{"too short", "ab"},
		{"uppercase", "Web"},
		{"leading digit", "1abc"},
		{"trailing dash", "abc-"},
	}
	for _, n := range badNames {
		cases = append(cases, tc{"create app name " + n.label,
			apiCall{method: "POST", path: "/v1/apps", body: mustJSON(t, api.AppCreateRequest{Name: n.name})},
			http.StatusBadRequest, api.CodeInvalidName})
		if n.name == "" {
			continue // "/v1/apps/" is another route; a path cannot carry an empty name
		}
		p := "/v1/apps/" + url.PathEscape(n.name)
		cases = append(cases,
			tc{"get app name " + n.label, apiCall{method: "GET", path: p}, http.StatusBadRequest, api.CodeInvalidName},
			tc{"destroy app name " + n.label, apiCall{method: "DELETE", path: p}, http.StatusBadRequest, api.CodeInvalidName},
			tc{"get config app name " + n.label, apiCall{method: "GET", path: p + "/config"}, http.StatusBadRequest, api.CodeInvalidName},
			tc{"set config app name " + n.label, apiCall{method: "PATCH", path: p + "/config", body: `{"set":{"A":"b"}}`}, http.StatusBadRequest, api.CodeInvalidName},
		)
	}

	cases = append(cases,
		tc{"duplicate app", apiCall{method: "POST", path: "/v1/apps", body: `{"name":"setup-app"}`}, http.StatusConflict, api.CodeConflict},
		tc{"unknown app get", apiCall{method: "GET", path: "/v1/apps/ghost"}, http.StatusNotFound, api.CodeNotFound},
		tc{"unknown app destroy", apiCall{method: "DELETE", path: "/v1/apps/ghost"}, http.StatusNotFound, api.CodeNotFound},
		tc{"unknown app config get", apiCall{method: "GET", path: "/v1/apps/ghost/config"}, http.StatusNotFound, api.CodeNotFound},
		tc{"unknown app config set", apiCall{method: "PATCH", path: "/v1/apps/ghost/config", body: `{"set":{"A":"b"}}`}, http.StatusNotFound, api.CodeNotFound},
	)

	// Malformed bodies; each names a distinct valid app so a leak is visible.
	for _, b := range []struct{ label, body string }{
		{"unclosed object", "{"},
		{"array", "[]"},
		{"null", "null"},
		{"string", `"json-string"`},
		{"trailing garbage", `{"name":"garbage-x"} x`},
		{"trailing object", `{"name":"garbage-obj"} {"name":"garbage-obj2"}`},
		{"trailing brace", `{"name":"garbage-brace"}}`},
		{"trailing bracket", `{"name":"garbage-bracket"}]`},
		{"unknown field", `{"name":"unknown-field","x":1}`},
		{"wrong type", `{"name":5}`},
		{"whitespace only", " \n\t "},
	} {
		cases = append(cases, tc{"create app body " + b.label,
			apiCall{method: "POST", path: "/v1/apps", body: b.body}, http.StatusBadRequest, api.CodeBadRequest})
	}
	cases = append(cases,
		tc{"create app empty body", apiCall{method: "POST", path: "/v1/apps"}, http.StatusBadRequest, api.CodeBadRequest},
		tc{"config body unclosed object", apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: `{"set":{"A":"b"}`}, http.StatusBadRequest, api.CodeBadRequest},
		tc{"config body wrong type", apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: `{"set":{"A":1}}`}, http.StatusBadRequest, api.CodeBadRequest},
		tc{"config body unknown field", apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: `{"set":{"A":"b"},"delete":["KEEP"]}`}, http.StatusBadRequest, api.CodeBadRequest},
		tc{"config empty body", apiCall{method: "PATCH", path: "/v1/apps/setup-app/config"}, http.StatusBadRequest, api.CodeBadRequest},
	)

	// Bodies over the 1 MiB limit, with and without a Content-Length.
	big := `{"name":"big-body","pad":"` + strings.Repeat("x", 1<<20) + `"}`
	bigConfig := `{"set":{"BIG":"` + strings.Repeat("x", 1<<20) + `"}}`
	cases = append(cases,
		tc{"create app body over 1MiB with length", apiCall{method: "POST", path: "/v1/apps", body: big}, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		tc{"create app body over 1MiB chunked", apiCall{method: "POST", path: "/v1/apps", body: big, chunked: true}, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		tc{"config body over 1MiB with length", apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: bigConfig}, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
		tc{"config body over 1MiB chunked", apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: bigConfig, chunked: true}, http.StatusRequestEntityTooLarge, api.CodeTooLarge},
	)

	// Authentication.
	for _, a := range []struct{ label, header string }{
		{"missing token", apiNoAuth},
		{"forged bearer", "Bearer forged"},
		{"empty bearer", "Bearer "},
		{"basic auth", "Basic eHh4Onl5eQ=="},
		{"revoked token", "Bearer " + revoked.Secret},
	} {
		cases = append(cases,
			tc{"list apps " + a.label, apiCall{method: "GET", path: "/v1/apps", auth: a.header}, http.StatusUnauthorized, api.CodeUnauthorized},
			tc{"create app " + a.label, apiCall{method: "POST", path: "/v1/apps", body: `{"name":"unauth-app"}`, auth: a.header}, http.StatusUnauthorized, api.CodeUnauthorized},
			tc{"set config " + a.label, apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: `{"set":{"KEEP":"stolen"}}`, auth: a.header}, http.StatusUnauthorized, api.CodeUnauthorized},
		)
	}

	// Config contents.
	patch := func(label string, req any, status int, code string) tc {
		return tc{"config " + label, apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: mustJSON(t, req)}, status, code}
	}
	for _, k := range []string{"1BAD", "A-B", "", "A B", "A=B", "KEY\n", strings.Repeat("K", api.MaxConfigKey+1)} {
		label := strconv.Quote(k)
		if len(k) > 20 {
			label = "key over " + strconv.Itoa(api.MaxConfigKey) + " chars"
		}
		cases = append(cases,
			patch("set invalid key "+label, api.ConfigUpdateRequest{Set: map[string]string{k: "v"}}, http.StatusBadRequest, api.CodeBadRequest),
			patch("unset invalid key "+label, api.ConfigUpdateRequest{Unset: []string{k}}, http.StatusBadRequest, api.CodeBadRequest),
		)
	}
	cases = append(cases,
		patch("one invalid key among valid ones", api.ConfigUpdateRequest{Set: map[string]string{"GOOD_ONE": "1", "1BAD": "2", "GOOD_TWO": "3"}}, http.StatusBadRequest, api.CodeBadRequest),
		patch("valid set with an invalid unset", api.ConfigUpdateRequest{Set: map[string]string{"GOOD_ONE": "1"}, Unset: []string{"A-B"}}, http.StatusBadRequest, api.CodeBadRequest),
		patch("value over 32KiB", api.ConfigUpdateRequest{Set: map[string]string{"BIG": strings.Repeat("v", api.MaxConfigValue+1)}}, http.StatusRequestEntityTooLarge, api.CodeTooLarge),
		patch("value over 32KiB among valid ones", api.ConfigUpdateRequest{Set: map[string]string{"GOOD_ONE": "1", "BIG": strings.Repeat("v", api.MaxConfigValue+1)}}, http.StatusRequestEntityTooLarge, api.CodeTooLarge),
		patch("empty update", api.ConfigUpdateRequest{}, http.StatusBadRequest, api.CodeBadRequest),
		tc{"config empty set and unset", apiCall{method: "PATCH", path: "/v1/apps/setup-app/config", body: `{"set":{},"unset":[]}`}, http.StatusBadRequest, api.CodeBadRequest},
		patch("same key set and unset", api.ConfigUpdateRequest{Set: map[string]string{"KEEP": "changed"}, Unset: []string{"KEEP"}}, http.StatusBadRequest, api.CodeBadRequest),
	)

	// Routes that do not exist.
	cases = append(cases,
		tc{"unknown route", apiCall{method: "GET", path: "/v1/nope"}, http.StatusNotFound, api.CodeNotFound},
		tc{"unknown version", apiCall{method: "GET", path: "/v2/apps"}, http.StatusNotFound, api.CodeNotFound},
		tc{"unknown route without token", apiCall{method: "GET", path: "/v1/nope", auth: apiNoAuth}, http.StatusNotFound, api.CodeNotFound},
		tc{"unknown sub-resource", apiCall{method: "GET", path: "/v1/apps/setup-app/nope"}, http.StatusNotFound, api.CodeNotFound},
	)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkErrorReply(t, raw.do(t, c.call), c.status, c.code)
		})
	}

	t.Run("nothing was stored", func(t *testing.T) {
		apps, _, err := c.Apps(ctx, nil)
		if err != nil {
			t.Fatalf("list apps: %v", err)
		}
		if diff := cmp.Diff([]string{setupApp}, appNames(apps)); diff != "" {
			t.Errorf("apps after the bad requests differ from the setup's (-want +got):\n%s", diff)
		}
		after, _, err := c.Config(ctx, setupApp, nil)
		if err != nil {
			t.Fatalf("get config of %s: %v", setupApp, err)
		}
		if diff := cmp.Diff(configBefore, after); diff != "" {
			t.Errorf("config of %s changed by rejected updates (-before +after):\n%s", setupApp, diff)
		}
		for _, k := range []string{"GOOD_ONE", "GOOD_TWO", "BIG", "A"} {
			if _, ok := after.Values[k]; ok {
				t.Errorf("config key %s was stored by a rejected update; want no key of a rejected update stored", k)
			}
		}
	})
}

func TestRoles(t *testing.T) {
	_, root := startDev(t)
	ctx := apiTestCtx(t)

	for _, name := range []string{"alpha", "beta"} {
		if _, err := root.CreateApp(ctx, name); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	if _, err := root.UpdateConfig(ctx, "beta", api.ConfigUpdateRequest{Set: map[string]string{"BETA_KEY": "beta-value"}}); err != nil {
		t.Fatalf("set beta config: %v", err)
	}
	mkToken := func(name, role string, apps ...string) *api.Client {
		t.Helper()
		tok, err := root.CreateToken(ctx, api.TokenCreateRequest{Name: name, Role: role, Apps: apps})
		if err != nil {
			t.Fatalf("create %s token %s: %v", role, name, err)
		}
		if tok.Secret == "" {
			t.Fatalf("created token %s has no secret; want it in the creation answer", name)
		}
		return root.WithToken(tok.Secret)
	}
	deployer := mkToken("deploy-alpha", api.RoleDeployer, "alpha")
	viewer := mkToken("view-all", api.RoleViewer)
	limited := mkToken("view-alpha", api.RoleViewer, "alpha")

	const dbURL = "postgres://alpha:pw@db/alpha"
	forbidden := func(t *testing.T, what string, err error) {
		t.Helper()
		checkClientError(t, what, err, http.StatusForbidden, api.CodeForbidden)
	}

	t.Run("deployer", func(t *testing.T) {
		cfg, err := deployer.UpdateConfig(ctx, "alpha", api.ConfigUpdateRequest{Set: map[string]string{"DB_URL": dbURL}})
		if err != nil {
			t.Fatalf("deployer set config on alpha: %v; want allowed", err)
		}
		if cfg.Values["DB_URL"] != dbURL || cfg.Redacted {
			t.Errorf("deployer's set answer = %+v, want DB_URL=%q unredacted", cfg, dbURL)
		}
		got, _, err := deployer.Config(ctx, "alpha", nil)
		if err != nil {
			t.Fatalf("deployer get config on alpha: %v; want allowed", err)
		}
		if diff := cmp.Diff(map[string]string{"DB_URL": dbURL}, got.Values); diff != "" || got.Redacted {
			t.Errorf("deployer sees alpha config values (-want +got):\n%s redacted=%v, want values unredacted", diff, got.Redacted)
		}
		if _, _, err := deployer.App(ctx, "alpha", nil); err != nil {
			t.Errorf("deployer get app alpha: %v; want allowed", err)
		}

		_, _, err = deployer.Config(ctx, "beta", nil)
		forbidden(t, "deployer get beta config", err)
		_, err = deployer.UpdateConfig(ctx, "beta", api.ConfigUpdateRequest{Set: map[string]string{"X": "y"}})
		forbidden(t, "deployer set beta config", err)
		_, _, err = deployer.App(ctx, "beta", nil)
		forbidden(t, "deployer get app beta", err)
		_, err = deployer.CreateApp(ctx, "gamma")
		forbidden(t, "deployer create app", err)
		forbidden(t, "deployer destroy its own app", deployer.DestroyApp(ctx, "alpha"))
		forbidden(t, "deployer destroy another app", deployer.DestroyApp(ctx, "beta"))
		_, _, err = deployer.Tokens(ctx, nil)
		forbidden(t, "deployer list tokens", err)
		_, err = deployer.CreateToken(ctx, api.TokenCreateRequest{Name: "sneaky", Role: api.RoleAdmin})
		forbidden(t, "deployer create token", err)
		forbidden(t, "deployer revoke token", deployer.RevokeToken(ctx, "view-all"))

		apps, _, err := deployer.Apps(ctx, nil)
		if err != nil {
			t.Fatalf("deployer list apps: %v", err)
		}
		if diff := cmp.Diff([]string{"alpha"}, appNames(apps)); diff != "" {
			t.Errorf("deployer's app list (-want +got):\n%s", diff)
		}
		self, err := deployer.TokenSelf(ctx)
		if err != nil || self.Name != "deploy-alpha" || self.Role != api.RoleDeployer || self.Secret != "" {
			t.Errorf("deployer token self = %+v, %v; want deploy-alpha, deployer, no secret", self, err)
		}
	})

	t.Run("viewer", func(t *testing.T) {
		apps, _, err := viewer.Apps(ctx, nil)
		if err != nil {
			t.Fatalf("viewer list apps: %v", err)
		}
		if diff := cmp.Diff([]string{"alpha", "beta"}, appNames(apps)); diff != "" {
			t.Errorf("viewer's app list (-want +got):\n%s", diff)
		}
		for app, key := range map[string]string{"alpha": "DB_URL", "beta": "BETA_KEY"} {
			cfg, _, err := viewer.Config(ctx, app, nil)
			if err != nil {
				t.Fatalf("viewer get %s config: %v; want allowed", app, err)
			}
			if diff := cmp.Diff([]string{key}, cfg.Keys); diff != "" {
				t.Errorf("viewer's %s config keys (-want +got):\n%s", app, diff)
			}
			if len(cfg.Values) != 0 || !cfg.Redacted {
				t.Errorf("viewer's %s config: values %v redacted %v; want no values and redacted", app, cfg.Values, cfg.Redacted)
			}
		}
		// The raw answer must not carry the secret either.
		var rawCfg map[string]any
		if _, err := viewer.Do(ctx, "GET", "/v1/apps/alpha/config", nil, &rawCfg); err != nil {
			t.Fatalf("viewer raw config get: %v", err)
		}
		if b, _ := json.Marshal(rawCfg); strings.Contains(string(b), dbURL) {
			t.Errorf("viewer's config answer %s contains the secret value; want it redacted", b)
		}

		_, err = viewer.UpdateConfig(ctx, "alpha", api.ConfigUpdateRequest{Set: map[string]string{"X": "y"}})
		forbidden(t, "viewer set config", err)
		_, err = viewer.UpdateConfig(ctx, "alpha", api.ConfigUpdateRequest{Unset: []string{"DB_URL"}})
		forbidden(t, "viewer unset config", err)
		_, err = viewer.CreateApp(ctx, "gamma")
		forbidden(t, "viewer create app", err)
		forbidden(t, "viewer destroy app", viewer.DestroyApp(ctx, "alpha"))
		_, err = viewer.CreateToken(ctx, api.TokenCreateRequest{Name: "sneaky", Role: api.RoleViewer})
		forbidden(t, "viewer create token", err)
		forbidden(t, "viewer revoke token", viewer.RevokeToken(ctx, "view-alpha"))
		_, _, err = viewer.Tokens(ctx, nil)
		forbidden(t, "viewer list tokens", err)
	})

	t.Run("limited viewer", func(t *testing.T) {
		apps, _, err := limited.Apps(ctx, nil)
		if err != nil {
			t.Fatalf("limited viewer list apps: %v", err)
		}
		if diff := cmp.Diff([]string{"alpha"}, appNames(apps)); diff != "" {
			t.Errorf("limited viewer's app list (-want +got):\n%s", diff)
		}
		cfg, _, err := limited.Config(ctx, "alpha", nil)
		if err != nil {
			t.Fatalf("limited viewer get alpha config: %v; want allowed", err)
		}
		if len(cfg.Values) != 0 || !cfg.Redacted {
			t.Errorf("limited viewer's alpha config: values %v redacted %v; want no values and redacted", cfg.Values, cfg.Redacted)
		}
		_, _, err = limited.Config(ctx, "beta", nil)
		forbidden(t, "limited viewer get beta config", err)
		_, _, err = limited.App(ctx, "beta", nil)
		forbidden(t, "limited viewer get app beta", err)
		_, err = limited.UpdateConfig(ctx, "alpha", api.ConfigUpdateRequest{Set: map[string]string{"X": "y"}})
		forbidden(t, "limited viewer set alpha config", err)
	})

	t.Run("audit visibility", func(t *testing.T) {
		all, _, err := root.Audit(ctx, api.AuditQuery{}, nil)
		if err != nil {
			t.Fatalf("admin audit: %v", err)
		}
		type key struct{ action, app string }
		seen := map[key]bool{}
		for _, e := range all {
			seen[key{e.Action, e.App}] = true
		}
		for _, want := range []key{
			{"apps.create", "alpha"}, {"apps.create", "beta"}, {"config.set", "beta"},
			{"config.set", "alpha"}, {"tokens.create", ""}, {"cluster.bootstrap", ""},
		} {
			if !seen[want] {
				t.Errorf("admin audit has no %s entry for app %q; want every mutation visible to admins (got %d entries)", want.action, want.app, len(all))
			}
		}

		for _, who := range []struct {
			name string
			c    *api.Client
		}{{"deployer", deployer}, {"limited viewer", limited}} {
			entries, _, err := who.c.Audit(ctx, api.AuditQuery{}, nil)
			if err != nil {
				t.Fatalf("%s audit: %v", who.name, err)
			}
			if len(entries) == 0 {
				t.Errorf("%s audit is empty; want the alpha entries", who.name)
			}
			for _, e := range entries {
				if e.App != "alpha" {
					t.Errorf("%s audit shows %+v; want only entries of app alpha", who.name, e)
				}
			}
			beta, _, err := who.c.Audit(ctx, api.AuditQuery{App: "beta"}, nil)
			if err != nil {
				t.Fatalf("%s audit of beta: %v", who.name, err)
			}
			if len(beta) != 0 {
				t.Errorf("%s audit of beta = %+v; want nothing", who.name, beta)
			}
		}
		// The deployer's own config change is attributed to it.
		entries, _, _ := deployer.Audit(ctx, api.AuditQuery{App: "alpha"}, nil)
		found := false
		for _, e := range entries {
			if e.Action == "config.set" && e.Actor == "deploy-alpha" && e.Role == api.RoleDeployer {
				found = true
			}
		}
		if !found {
			t.Errorf("deployer audit of alpha = %+v; want a config.set by deploy-alpha (deployer)", entries)
		}
	})

	// Last: this revokes the root token.
	t.Run("last admin", func(t *testing.T) {
		err := root.RevokeToken(ctx, "root")
		checkClientError(t, "revoke the only admin token", err, http.StatusConflict, api.CodeConflict)
		if self, err := root.TokenSelf(ctx); err != nil || self.Name != "root" {
			t.Fatalf("root token after refused revoke: %+v, %v; want it still valid", self, err)
		}
		second := mkToken("admin-two", api.RoleAdmin)
		if err := second.RevokeToken(ctx, "root"); err != nil {
			t.Fatalf("revoke root with a second admin present: %v; want success", err)
		}
		_, _, err = root.Apps(ctx, nil)
		checkClientError(t, "root token after revoke", err, http.StatusUnauthorized, api.CodeUnauthorized)
		err = second.RevokeToken(ctx, "admin-two")
		checkClientError(t, "revoke the now only admin token", err, http.StatusConflict, api.CodeConflict)
		if _, _, err := second.Apps(ctx, nil); err != nil {
			t.Errorf("second admin after refused self-revoke: %v; want it still valid", err)
		}
	})
}

func TestAuditRecordsMutations(t *testing.T) {
	_, c := startDev(t)
	ctx := apiTestCtx(t)
	const (
		app    = "audited"
		secret = "zq-very-distinctive-secret-4711"
	)
	steps := []struct {
		action, app, detailHas string
		do                     func() error
	}{
		{"apps.create", app, "", func() error { _, err := c.CreateApp(ctx, app); return err }},
		{"config.set", app, "API_KEY", func() error {
			_, err := c.UpdateConfig(ctx, app, api.ConfigUpdateRequest{Set: map[string]string{"API_KEY": secret, "OTHER": secret + "-2"}})
			return err
		}},
		{"config.unset", app, "API_KEY", func() error {
			_, err := c.UpdateConfig(ctx, app, api.ConfigUpdateRequest{Unset: []string{"API_KEY"}})
			return err
		}},
		{"tokens.create", "", "audit-tok", func() error {
			_, err := c.CreateToken(ctx, api.TokenCreateRequest{Name: "audit-tok", Role: api.RoleViewer})
			return err
		}},
		{"tokens.revoke", "", "audit-tok", func() error { return c.RevokeToken(ctx, "audit-tok") }},
		{"apps.destroy", app, "", func() error { return c.DestroyApp(ctx, app) }},
	}
	start := time.Now().Add(-time.Minute)
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.action, err)
		}
	}

	entries, _, err := c.Audit(ctx, api.AuditQuery{}, nil)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if len(entries) < len(steps) {
		t.Fatalf("audit has %d entries, want at least %d: %+v", len(entries), len(steps), entries)
	}
	var gotActions []string
	for _, e := range entries[:len(steps)] {
		gotActions = append([]string{e.Action}, gotActions...)
	}
	var wantActions []string
	for _, s := range steps {
		wantActions = append(wantActions, s.action)
	}
	if diff := cmp.Diff(wantActions, gotActions); diff != "" {
		t.Fatalf("newest %d audit actions, oldest first (-want +got):\n%s", len(steps), diff)
	}
	for i, s := range steps {
		e := entries[len(steps)-1-i]
		if e.Actor != "root" || e.Role != api.RoleAdmin {
			t.Errorf("%s entry actor %q role %q, want root admin", s.action, e.Actor, e.Role)
		}
		if e.Remote != "127.0.0.1" {
			t.Errorf("%s entry remote %q, want 127.0.0.1", s.action, e.Remote)
		}
		if e.Time.IsZero() || e.Time.Before(start) || e.Time.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s entry time %v, want about now", s.action, e.Time)
		}
		if e.App != s.app {
			t.Errorf("%s entry app %q, want %q", s.action, e.App, s.app)
		}
		if !strings.Contains(e.Detail, s.detailHas) {
			t.Errorf("%s entry detail %q, want it to mention %q", s.action, e.Detail, s.detailHas)
		}
		if e.Index == 0 || (i > 0 && e.Index <= entries[len(steps)-i].Index) {
			t.Errorf("%s entry index %d, want increasing non-zero indexes", s.action, e.Index)
		}
	}
	if setEntry := entries[len(steps)-2]; !strings.Contains(setEntry.Detail, "OTHER") {
		t.Errorf("config.set detail %q, want both key names", setEntry.Detail)
	}
	// No field of any entry, nor the raw answer, may carry a config value.
	var rawAudit json.RawMessage
	if _, err := c.Do(ctx, "GET", "/v1/audit", nil, &rawAudit); err != nil {
		t.Fatalf("raw audit: %v", err)
	}
	if strings.Contains(string(rawAudit), secret) {
		t.Errorf("audit answer contains the config value %q; want values never recorded:\n%s", secret, rawAudit)
	}
	for _, e := range entries {
		for _, f := range []string{e.Actor, e.Role, e.Action, e.App, e.Detail, e.Remote} {
			if strings.Contains(f, secret) {
				t.Errorf("audit entry %+v contains the config value; want values never recorded", e)
			}
		}
	}
}

func TestBlockingQuery(t *testing.T) {
	s, c := startDev(t)
	raw := newAPIRaw(t, s)
	ctx := apiTestCtx(t)

	if _, err := c.CreateApp(ctx, "first"); err != nil {
		t.Fatalf("create first: %v", err)
	}
	_, meta, err := c.Apps(ctx, nil)
	if err != nil {
		t.Fatalf("list apps: %v", err)
	}
	if meta.LastIndex == 0 {
		t.Fatalf("X-Berth-Index is 0 or missing; want the apps table index")
	}
	idx := meta.LastIndex

	t.Run("wakes on change", func(t *testing.T) {
		created := make(chan error, 1)
		timer := time.AfterFunc(300*time.Millisecond, func() {
			_, err := c.CreateApp(ctx, "second")
			created <- err
		})
		defer timer.Stop()
		start := time.Now()
		apps, meta, err := c.Apps(ctx, &api.QueryOptions{WaitIndex: idx, WaitTime: 5 * time.Second})
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("blocking list: %v", err)
		}
		select {
		case err := <-created:
			if err != nil {
				t.Fatalf("create second while blocked: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("creating the app while the query blocked did not finish in 10s")
		}
		if elapsed < 250*time.Millisecond {
			t.Errorf("blocking query returned after %v, want it to block until the change at ~300ms", elapsed)
		}
		if elapsed > 2*time.Second {
			t.Errorf("blocking query returned after %v, want within ~2s of the change", elapsed)
		}
		if meta.LastIndex <= idx {
			t.Errorf("index after change = %d, want > %d", meta.LastIndex, idx)
		}
		if diff := cmp.Diff([]string{"first", "second"}, appNames(apps)); diff != "" {
			t.Errorf("apps after change (-want +got):\n%s", diff)
		}
		idx = meta.LastIndex
	})

	t.Run("times out unchanged", func(t *testing.T) {
		start := time.Now()
		_, meta, err := c.Apps(ctx, &api.QueryOptions{WaitIndex: idx, WaitTime: 200 * time.Millisecond})
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("blocking list: %v", err)
		}
		if elapsed < 150*time.Millisecond || elapsed > 3*time.Second {
			t.Errorf("query with wait=200ms returned after %v, want about 200ms", elapsed)
		}
		if meta.LastIndex != idx {
			t.Errorf("index after timeout = %d, want unchanged %d", meta.LastIndex, idx)
		}
	})

	t.Run("past index returns at once", func(t *testing.T) {
		start := time.Now()
		_, meta, err := c.Apps(ctx, &api.QueryOptions{WaitIndex: idx - 1, WaitTime: 5 * time.Second})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("query with an index behind the state took %v, want an immediate answer", elapsed)
		}
		if meta.LastIndex != idx {
			t.Errorf("index = %d, want %d", meta.LastIndex, idx)
		}
	})

	for _, q := range []string{"index=abc", "index=-1", "wait=xyz", "wait=-1s", "index=1&wait=5"} {
		t.Run("bad query "+q, func(t *testing.T) {
			checkErrorReply(t, raw.do(t, apiCall{method: "GET", path: "/v1/apps?" + q}), http.StatusBadRequest, api.CodeBadRequest)
		})
	}
}

func TestMetrics(t *testing.T) {
	s, c := startDev(t)
	raw := newAPIRaw(t, s)
	ctx := apiTestCtx(t)
	if _, err := c.CreateApp(ctx, "metered"); err != nil {
		t.Fatalf("create app: %v", err)
	}

	// The request counter is updated after the answer is written, so poll.
	requestLine := regexp.MustCompile(`(?m)^berth_api_requests_total\{[^}]*route="POST /v1/apps"[^}]*\} [1-9]`)
	applyCount := regexp.MustCompile(`(?m)^berth_raft_apply_duration_seconds_count [1-9]`)
	leader := regexp.MustCompile(`(?m)^berth_raft_leader 1$`)
	var r apiReply
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = raw.do(t, apiCall{method: "GET", path: "/v1/metrics", auth: apiNoAuth})
		if r.status == http.StatusOK && requestLine.Match(r.body) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/metrics without a token: status %d, want 200 (body %s)", r.status, apiClip(r.body))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics Content-Type = %q, want text/plain", ct)
	}
	for name, re := range map[string]*regexp.Regexp{
		`berth_api_requests_total with route="POST /v1/apps"`: requestLine,
		"berth_raft_apply_duration_seconds_count > 0":         applyCount,
		"berth_raft_leader 1":                                 leader,
	} {
		if !re.Match(r.body) {
			t.Errorf("metrics have no %s; want it (metrics:\n%s)", name, grepMetrics(r.body, "berth_"))
		}
	}
}

// grepMetrics keeps the lines of a metrics page that contain s.
func grepMetrics(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestStaleRead(t *testing.T) {
	s, c := startDev(t)
	raw := newAPIRaw(t, s)
	ctx := apiTestCtx(t)
	if _, err := c.CreateApp(ctx, "stale-app"); err != nil {
		t.Fatalf("create app: %v", err)
	}

	r := raw.do(t, apiCall{method: "GET", path: "/v1/apps?stale"})
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/apps?stale: status %d, want 200 (body %s)", r.status, apiClip(r.body))
	}
	if got := r.header.Get(api.HeaderKnownLeader); got != "true" {
		t.Errorf("%s = %q, want true", api.HeaderKnownLeader, got)
	}
	if got := r.header.Get(api.HeaderIndex); got == "" || got == "0" {
		t.Errorf("%s = %q, want a non-zero index", api.HeaderIndex, got)
	}
	var apps []api.App
	if err := json.Unmarshal(r.body, &apps); err != nil {
		t.Fatalf("stale answer %s is not a list of apps: %v", apiClip(r.body), err)
	}
	if diff := cmp.Diff([]string{"stale-app"}, appNames(apps)); diff != "" {
		t.Errorf("stale app list (-want +got):\n%s", diff)
	}

	apps, meta, err := c.Apps(ctx, &api.QueryOptions{Stale: true})
	if err != nil {
		t.Fatalf("client stale list: %v", err)
	}
	if !meta.KnownLeader || meta.LastIndex == 0 || !slices.Contains(appNames(apps), "stale-app") {
		t.Errorf("client stale list = %v, meta %+v; want stale-app, a known leader and an index", appNames(apps), meta)
	}
}
