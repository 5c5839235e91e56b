package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
	"github.com/berthpaas/berth/internal/wait"
)

// follower returns the index of a running server that is not the leader.
func follower(c *harness.Cluster, leader int) int {
	for i, s := range c.Servers {
		if i != leader && s.Running() {
			return i
		}
	}
	return -1
}

// appNames lists app names as server i sees them (stale: its local state).
func appNames(ctx context.Context, cl *api.Client, stale bool) ([]string, error) {
	apps, _, err := cl.Apps(ctx, &api.QueryOptions{Stale: stale})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	return names, nil
}

// waitApps waits until server i's local state holds exactly want.
func waitApps(t *testing.T, c *harness.Cluster, i int, want []string) {
	t.Helper()
	err := wait.For(context.Background(), fmt.Sprintf("%s to hold %d apps", c.Servers[i].Name, len(want)), 20*time.Second, 50*time.Millisecond,
		func(ctx context.Context) error {
			got, err := appNames(ctx, c.Client(i), true)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("has %d apps, want %d (first missing: %v)", len(got), len(want), firstMissing(want, got))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

func firstMissing(want, got []string) string {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return w
		}
	}
	return "-"
}

func TestWriteThroughFollowerAndReadModes(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t, 2*time.Minute)
	leader, err := c.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := follower(c, leader)

	// A write sent to a follower is forwarded and lands.
	if _, err := c.Client(f).CreateApp(ctx, "via-follower"); err != nil {
		t.Fatalf("create through follower %s: %v", c.Servers[f].Name, err)
	}
	// A default (consistent) read through the follower is answered by the
	// leader, so it sees the write at once.
	got, err := appNames(ctx, c.Client(f), false)
	if err != nil || !slices.Equal(got, []string{"via-follower"}) {
		t.Fatalf("default read through follower = %v, %v", got, err)
	}
	cfg, err := c.Client(f).UpdateConfig(ctx, "via-follower", api.ConfigUpdateRequest{Set: map[string]string{"K": "v"}})
	if err != nil || cfg.Values["K"] != "v" {
		t.Fatalf("config through follower = %+v, %v", cfg, err)
	}
	// Stale reads are answered locally; every server converges.
	for i := range c.Servers {
		waitApps(t, c, i, []string{"via-follower"})
	}

	// With the leader and one follower down, the last server has no
	// quorum: a default read fails with 503, a stale read still answers.
	other := 3 - leader - f
	c.Kill(leader)
	c.Kill(other)
	start := time.Now()
	_, err = appNames(ctx, c.Client(f), false)
	if !api.IsCode(err, api.CodeNoLeader) {
		t.Fatalf("default read without quorum = %v, want no_leader", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("default read without quorum took %s; it must fail fast", d)
	}
	got, err = appNames(ctx, c.Client(f), true)
	if err != nil || !slices.Equal(got, []string{"via-follower"}) {
		t.Fatalf("stale read without quorum = %v, %v", got, err)
	}
}

func TestLeaderKillLosesNoAckedWriteAndRejoinsViaSnapshot(t *testing.T) {
	raft := harness.FastRaft()
	raft["snapshot_threshold"] = 32
	raft["trailing_logs"] = 8
	raft["snapshot_interval"] = "1s"
	c := newCluster(t, 3, raft)
	ctx := ctxT(t, 3*time.Minute)
	leader, err := c.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var acked []string
	write := func(via int, name string) bool {
		if _, err := c.Client(via).CreateApp(ctx, name); err != nil {
			return false
		}
		acked = append(acked, name)
		return true
	}
	for i := range 40 {
		if !write(leader, fmt.Sprintf("before-%02d", i)) {
			t.Fatalf("write %d to a healthy cluster failed", i)
		}
	}
	// Keep writing through a follower while the leader dies hard.
	f := follower(c, leader)
	oldLeader := leader
	c.Kill(oldLeader)
	for i := 0; len(acked) < 40+60 && i < 2000; i++ {
		write(f, fmt.Sprintf("after-%03d", i))
	}
	if len(acked) < 100 {
		t.Fatalf("only %d writes acknowledged after the leader died", len(acked))
	}
	newLeader, err := c.WaitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if newLeader == oldLeader {
		t.Fatal("dead server still leader")
	}
	slices.Sort(acked)
	for i := range c.Servers {
		if i != oldLeader {
			waitApps(t, c, i, acked)
		}
	}
	// Compact the new leader's log past what the old leader has, so it can
	// only catch up through InstallSnapshot.
	if err := c.Client(newLeader).ClusterSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	leaderSelf, err := c.Client(newLeader).ClusterSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(oldLeader); err != nil {
		t.Fatal(err)
	}
	waitApps(t, c, oldLeader, acked)
	self, err := c.Client(oldLeader).ClusterSelf(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if self.LastSnapshotIndex < leaderSelf.LastSnapshotIndex {
		t.Fatalf("old leader caught up without installing the snapshot: its snapshot index %d < leader's %d",
			self.LastSnapshotIndex, leaderSelf.LastSnapshotIndex)
	}
	// And it keeps following: a new write reaches it.
	if _, err := c.Client(oldLeader).CreateApp(ctx, "last-one"); err != nil {
		t.Fatal(err)
	}
	waitApps(t, c, oldLeader, append(slices.Clone(acked), "last-one"))
}

func TestQuorumLoss(t *testing.T) {
	t.Run("3 servers with 2 down refuse writes with 503", func(t *testing.T) {
		c := newCluster(t, 3, nil)
		ctx := ctxT(t, 2*time.Minute)
		leader, err := c.WaitLeader(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f := follower(c, leader)
		for i := range c.Servers {
			if i != f {
				c.Kill(i)
			}
		}
		start := time.Now()
		_, err = c.Client(f).CreateApp(ctx, "no-quorum")
		var apiErr *api.Error
		if !api.IsCode(err, api.CodeNoLeader) || !asAPIError(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
			t.Fatalf("write without quorum = %v, want 503 no_leader", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("write without quorum took %s; it must fail fast", d)
		}
		// Nothing was stored, and the cluster recovers when servers return.
		for i := range c.Servers {
			if i != f {
				if err := c.Restart(i); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := c.WaitLeader(ctx, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		got, err := appNames(ctx, c.Client(f), false)
		if err != nil || len(got) != 0 {
			t.Fatalf("apps after recovery = %v, %v; the refused write must not appear", got, err)
		}
		if _, err := c.Client(f).CreateApp(ctx, "after-recovery"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("5 servers with 2 down keep working", func(t *testing.T) {
		c := newCluster(t, 5, nil)
		ctx := ctxT(t, 2*time.Minute)
		leader, err := c.WaitLeader(ctx, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// Take down the leader and one follower.
		c.Kill(leader)
		c.Kill(follower(c, leader))
		live := follower(c, -1)
		if _, err := c.WaitLeader(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Client(live).CreateApp(ctx, "still-up"); err != nil {
			t.Fatalf("write with 3 of 5 up: %v", err)
		}
	})
}

func asAPIError(err error, target **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestColdRestartOfEveryServer(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := c.Client(0).CreateApp(ctx, "survivor"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(1).UpdateConfig(ctx, "survivor", api.ConfigUpdateRequest{Set: map[string]string{"DATABASE_URL": "postgres://x"}}); err != nil {
		t.Fatal(err)
	}
	for i := range c.Servers {
		c.Kill(i)
	}
	// Restart in reverse order, with no flags beyond the usual ones.
	for i := len(c.Servers) - 1; i >= 0; i-- {
		if err := c.Restart(i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitLeader(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := c.Client(2).Config(ctx, "survivor", nil)
	if err != nil || cfg.Values["DATABASE_URL"] != "postgres://x" {
		t.Fatalf("config after cold restart = %+v, %v", cfg, err)
	}
	if _, err := c.Client(0).CreateApp(ctx, "after-restart"); err != nil {
		t.Fatalf("write after cold restart: %v", err)
	}
}

func memberNames(ctx context.Context, cl *api.Client) ([]string, error) {
	st, err := cl.ClusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range st.Members {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return names, nil
}

func waitMembers(t *testing.T, c *harness.Cluster, via int, want ...string) {
	t.Helper()
	err := wait.For(context.Background(), fmt.Sprintf("members %v", want), 20*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
		got, err := memberNames(ctx, c.Client(via))
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("members are %v", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAddRemoveAndReplaceServers(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t, 3*time.Minute)
	if _, err := c.Client(0).CreateApp(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(0).UpdateConfig(ctx, "kept", api.ConfigUpdateRequest{Set: map[string]string{"SECRET": "s3"}}); err != nil {
		t.Fatal(err)
	}

	// Add a fourth server: it joins with an admin token, receives the
	// keyring and the data.
	s4, err := c.AddServer("s4", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c, 0, "s1", "s2", "s3", "s4")
	waitApps(t, c, s4, []string{"kept"})
	cfg, _, err := c.Client(s4).Config(ctx, "kept", &api.QueryOptions{Stale: true})
	if err != nil || cfg.Values["SECRET"] != "s3" {
		t.Fatalf("joined server cannot decrypt config: %+v, %v", cfg, err)
	}

	// A join without an admin token is refused.
	if _, err := c.Client(0).WithToken("").ClusterJoin(ctx, api.JoinRequest{Name: "evil", RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"}); !api.IsCode(err, api.CodeUnauthorized) {
		t.Fatalf("join without token = %v, want unauthorized", err)
	}

	// Remove it again.
	c.Stop(s4)
	if err := c.Client(0).ClusterRemove(ctx, "s4"); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c, 0, "s1", "s2", "s3")

	// Replace a dead server: s3 dies for good, is removed, and s5 takes
	// its place.
	c.Kill(2)
	if _, err := c.WaitLeader(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Client(0).ClusterRemove(ctx, "s3"); err != nil {
		t.Fatal(err)
	}
	s5, err := c.AddServer("s5", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	waitMembers(t, c, 0, "s1", "s2", "s5")
	waitApps(t, c, s5, []string{"kept"})
	// The new trio survives losing one more (old) server.
	c.Kill(0)
	if _, err := c.WaitLeader(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(s5).CreateApp(ctx, "after-replace"); err != nil {
		t.Fatalf("write after replacing a server and losing another: %v", err)
	}
	if err := c.Client(1).ClusterRemove(ctx, "nobody"); !api.IsCode(err, api.CodeNotFound) {
		t.Fatalf("remove unknown server = %v, want not_found", err)
	}
}
