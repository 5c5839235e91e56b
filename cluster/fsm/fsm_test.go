package fsm

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// commands is a fixed history touching every message type.
func commands(t *testing.T) [][]byte {
	t.Helper()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	audit := func(action, app string) Audited {
		return Audited{Audit: &state.AuditEntry{Time: at, Actor: "root", Role: "admin", Action: action, App: app, Remote: "127.0.0.1"}}
	}
	cmds := []Command{
		ACLBootstrap{Audited: audit("cluster.bootstrap", ""), Token: state.Token{AccessorID: "a1", Name: "root", SecretHash: "h1", Role: "admin", CreatedAt: at}},
		ServerUpsert{Server: state.Server{Name: "s1", APIAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"}},
		AppCreate{Audited: audit("apps.create", "web"), Name: "web", Time: at},
		AppCreate{Audited: audit("apps.create", "api"), Name: "api", Time: at},
		ConfigUpdate{Audited: audit("config.set", "web"), App: "web", Set: map[string][]byte{"A": {1, 2}, "B": {3}}},
		ConfigUpdate{Audited: audit("config.unset", "web"), App: "web", Unset: []string{"B"}},
		TokenCreate{Audited: audit("tokens.create", ""), Token: state.Token{AccessorID: "a2", Name: "ci", SecretHash: "h2", Role: "deployer", Apps: []string{"web"}, CreatedAt: at}},
		TokenRevoke{Audited: audit("tokens.revoke", ""), IDOrName: "ci"},
		AppDestroy{Audited: audit("apps.destroy", "api"), Name: "api"},
		ServerRemove{Name: "s9"},
		AppUpdate{Audited: audit("apps.update", "web"), Name: "web", DeployBranch: ptr("prod"), DeployTimeout: ptr(30 * time.Second)},
		BuildStart{Build: state.Build{ID: "b1", App: "web", Source: "git", Commit: "abc", StartedAt: at}},
		BuildFinish{ID: "b1", Status: state.BuildSucceeded, Output: "ok", Release: 1, Time: at},
		Release{Audited: audit("releases.create", "web"), Release: state.NewRelease{App: "web", Image: "r/web@sha256:1", Digest: "sha256:1", Processes: map[string]string{"web": "./web"}, Kind: "deploy", CreatedAt: at}},
		ConfigUpdate{Audited: audit("config.set", "web"), App: "web", Set: map[string][]byte{"C": {9}}, Description: "Set C", By: "root", Time: at},
		Rollback{Audited: audit("releases.rollback", "web"), App: "web", By: "root", Time: at},
		KeyAdd{Audited: audit("keys.add", ""), Key: state.Key{Fingerprint: "SHA256:x", Name: "laptop", Owner: "a1", PublicKey: "ssh-ed25519 AAAA", CreatedAt: at}},
		KeyAdd{Key: state.Key{Fingerprint: "SHA256:y", Name: "old", Owner: "a1"}},
		KeyRemove{Owner: "a1", Name: "old"},
		Deploy{ID: "web-v3", State: state.DeployStarting, Time: at},
		Deploy{ID: "web-v3", State: state.DeployCutover, Time: at},
		Deploy{ID: "web-v3", State: state.DeployDone, Time: at},
		Scale{Audited: audit("ps.scale", "web"), App: "web", Counts: map[string]int{"web": 2, "worker": 1}, Resources: map[string]state.Resources{"web": {MemoryMB: 512}}},
		CheckSet{App: "web", Process: "web", Check: state.Check{Type: "http", Path: "/healthz", Timeout: time.Second}},
	}
	var out [][]byte
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func applyAll(t *testing.T, f *FSM, entries [][]byte) {
	t.Helper()
	for i, e := range entries {
		if res := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: e}); res != nil {
			if err, ok := res.(error); ok {
				t.Fatalf("entry %d: %v", i+1, err)
			}
		}
	}
}

func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

func newFSM(t *testing.T) *FSM {
	f, err := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDeterministic(t *testing.T) {
	a, b := newFSM(t), newFSM(t)
	applyAll(t, a, commands(t))
	time.Sleep(10 * time.Millisecond) // a different wall clock must change nothing
	applyAll(t, b, commands(t))
	if pa, pb := persist(t, a), persist(t, b); !bytes.Equal(pa, pb) {
		t.Fatalf("two FSMs fed the same log differ:\n%s\n---\n%s", pa, pb)
	}
}

func TestSnapshotPersistRestore(t *testing.T) {
	f := newFSM(t)
	applyAll(t, f, commands(t))
	data := persist(t, f)
	if got, want := f.AppliedIndex(), uint64(len(commands(t))); got != want {
		t.Fatalf("AppliedIndex after %d commands = %d", want, got)
	}

	g := newFSM(t)
	old := g.State()
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got := g.AppliedIndex(); got == 0 || got != g.State().Snapshot().LatestIndex() {
		t.Fatalf("AppliedIndex after restore = %d, want the restored state's index %d", got, g.State().Snapshot().LatestIndex())
	}
	select {
	case <-old.AbandonCh():
	default:
		t.Fatal("restore did not abandon the old store; blocking queries would hang")
	}
	if again := persist(t, g); !bytes.Equal(again, data) {
		t.Fatalf("restored FSM persists differently:\n%s\n---\n%s", data, again)
	}
	snap := g.State().Snapshot()
	apps, _, err := snap.Apps(memdb.NewWatchSet())
	if err != nil || len(apps) != 1 || apps[0].Name != "web" || apps[0].DeployBranch != "prod" || apps[0].LatestRelease != 3 {
		t.Fatalf("apps after restore = %v err %v", apps, err)
	}
	cfg, _, _ := snap.Config(nil, "web")
	// The rollback to v1 restored v1's config, without C.
	if len(cfg.Sealed) != 1 || !bytes.Equal(cfg.Sealed["A"], []byte{1, 2}) {
		t.Fatalf("config after restore = %v", cfg.Sealed)
	}
	rels, _, _ := snap.Releases(nil, "web")
	if len(rels) != 3 || rels[0].Kind != "rollback" || rels[1].Kind != "config" || len(rels[1].Config) != 2 || rels[0].Image != "r/web@sha256:1" {
		t.Fatalf("releases after restore: %+v", rels)
	}
	deps, _, _ := snap.Deploys(nil, "web")
	if len(deps) != 3 || deps[0].ID != "web-v3" || deps[0].State != state.DeployDone || deps[1].State != state.DeploySuperseded {
		t.Fatalf("deploys after restore: %+v", deps)
	}
	if apps[0].ActiveRelease != 3 || apps[0].Formation["web"] != 2 || apps[0].Resources["web"].MemoryMB != 512 || apps[0].Checks["web"].Path != "/healthz" {
		t.Fatalf("app after deploy, scale and check: %+v", apps[0])
	}
	keys, _, _ := snap.Keys(nil, "a1")
	if len(keys) != 1 || keys[0].Name != "laptop" {
		t.Fatalf("keys after restore: %+v", keys)
	}
	bld, _, err := snap.Build(nil, "web", "b1")
	if err != nil || bld.Status != state.BuildSucceeded || bld.Output != "ok" {
		t.Fatalf("build after restore: %+v %v", bld, err)
	}
	if !snap.ACLBootstrapped() {
		t.Fatal("bootstrap flag lost in restore")
	}
	entries, _, _ := snap.Audit(nil, "", 0, nil)
	if len(entries) != 14 {
		t.Fatalf("audit entries after restore = %d, want 14", len(entries))
	}
	// The restored FSM keeps working.
	b, _ := Encode(AppCreate{Name: "more", Time: time.Unix(0, 0)})
	if res := g.Apply(&raft.Log{Index: 20, Type: raft.LogCommand, Data: b}); res == nil {
		t.Fatal("apply after restore returned nil, want the app")
	}
}

func TestApplyErrorsChangeNothing(t *testing.T) {
	f := newFSM(t)
	applyAll(t, f, commands(t))
	before := persist(t, f)
	for _, c := range []Command{
		AppCreate{Name: "web"},
		AppDestroy{Name: "nope"},
		ConfigUpdate{App: "nope", Set: map[string][]byte{"A": {1}}},
		ACLBootstrap{Token: state.Token{AccessorID: "x", Name: "x", SecretHash: "x"}},
		TokenRevoke{IDOrName: "nope"},
		Rollback{App: "web", Version: 99},
		KeyAdd{Key: state.Key{Fingerprint: "SHA256:x", Name: "other", Owner: "a2"}},
		KeyRemove{Owner: "a1", Name: "nope"},
		Release{Release: state.NewRelease{App: "nope"}},
	} {
		b, _ := Encode(c)
		res := f.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: b})
		err, ok := res.(error)
		if !ok || !(errors.Is(err, state.ErrExists) || errors.Is(err, state.ErrNotFound) || errors.Is(err, state.ErrAlreadyBootstrapped) || errors.Is(err, state.ErrBuildRunning)) {
			t.Errorf("%T: result %v, want a state error", c, res)
		}
	}
	if after := persist(t, f); !bytes.Equal(before, after) {
		t.Fatal("failed commands changed the state")
	}
}

func TestCorruptEntryIsFatal(t *testing.T) {
	f := newFSM(t)
	for _, data := range [][]byte{{byte(AppCreateType), '{'}, {200, '{', '}'}, {}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Apply(%q) did not panic", data)
				}
			}()
			f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
		}()
	}
}

func TestAuditIsBounded(t *testing.T) {
	f := newFSM(t)
	for i := 1; i <= state.AuditRetain+5; i++ {
		b, _ := Encode(ServerUpsert{Audited: Audited{Audit: &state.AuditEntry{Action: "x"}}, Server: state.Server{Name: "s"}})
		f.Apply(&raft.Log{Index: uint64(i), Type: raft.LogCommand, Data: b})
	}
	entries, _, _ := f.State().Snapshot().Audit(nil, "", 0, nil)
	if len(entries) != state.AuditRetain || entries[len(entries)-1].Index != 6 {
		t.Fatalf("audit holds %d entries, oldest %d; want %d, oldest 6", len(entries), entries[len(entries)-1].Index, state.AuditRetain)
	}
}

type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

func TestOneRunningBuildPerApp(t *testing.T) {
	f := newFSM(t)
	applyAll(t, f, commands(t))
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	apply := func(i uint64, c Command) any {
		b, _ := Encode(c)
		return f.Apply(&raft.Log{Index: i, Type: raft.LogCommand, Data: b})
	}
	if res := apply(100, BuildStart{Build: state.Build{ID: "r1", App: "web", StartedAt: at}}); res != nil {
		t.Fatalf("first build: %v", res)
	}
	if err, _ := apply(101, BuildStart{Build: state.Build{ID: "r2", App: "web", StartedAt: at.Add(time.Minute)}}).(error); !errors.Is(err, state.ErrBuildRunning) {
		t.Fatalf("second build while one runs = %v, want ErrBuildRunning", err)
	}
	// A build whose server died long ago no longer blocks.
	if res := apply(102, BuildStart{Build: state.Build{ID: "r3", App: "web", StartedAt: at.Add(state.StaleBuildAfter + time.Minute)}}); res != nil {
		t.Fatalf("build after a stale one: %v", res)
	}
}

func TestDecodeChecksPeerCommands(t *testing.T) {
	f := newFSM(t)
	for _, good := range commands(t) {
		if _, err := f.Decode(good); err != nil {
			t.Errorf("Decode(%q) = %v", good, err)
		}
	}
	for _, bad := range [][]byte{nil, {}, {200, '{', '}'}, {byte(AppCreateType), '{'}, {byte(AppCreateType), '[', ']'}} {
		if _, err := f.Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted a bad command", bad)
		}
	}
}

func ptr[T any](v T) *T { return &v }
