package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
)

// TestSecretsNeverOnDisk sets a known config value, makes every server
// write its raft log and a snapshot, and then reads every file under every
// data dir: the value must appear nowhere, in plain or encoded form.
func TestSecretsNeverOnDisk(t *testing.T) {
	raft := harness.FastRaft()
	raft["snapshot_threshold"] = 16
	raft["trailing_logs"] = 4
	c := newCluster(t, 3, raft)
	ctx := ctxT(t, 2*time.Minute)
	b := make([]byte, 12)
	rand.Read(b)
	canary := "canary-" + hex.EncodeToString(b)

	if _, err := c.Client(1).CreateApp(ctx, "vault"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(1).UpdateConfig(ctx, "vault", api.ConfigUpdateRequest{Set: map[string]string{"API_KEY": canary}}); err != nil {
		t.Fatal(err)
	}
	// More writes so the log moves on, then a snapshot on every server.
	for i := range 20 {
		if _, err := c.Client(0).UpdateConfig(ctx, "vault", api.ConfigUpdateRequest{Set: map[string]string{fmt.Sprintf("K%d", i): "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range c.Servers {
		waitApps(t, c, i, []string{"vault"})
		if err := c.Client(i).ClusterSnapshot(ctx); err != nil {
			t.Fatalf("snapshot on %s: %v", c.Servers[i].Name, err)
		}
	}
	// The value is still there for an authorised reader, on every server.
	for i := range c.Servers {
		cfg, _, err := c.Client(i).Config(ctx, "vault", &api.QueryOptions{Stale: true})
		if err != nil || cfg.Values["API_KEY"] != canary {
			t.Fatalf("%s: config = %v, %v", c.Servers[i].Name, cfg, err)
		}
	}

	forms := [][]byte{[]byte(canary), []byte(base64.StdEncoding.EncodeToString([]byte(canary))),
		[]byte(base64.RawStdEncoding.EncodeToString([]byte(canary))), []byte(hex.EncodeToString([]byte(canary)))}
	files := 0
	for _, s := range c.Servers {
		err := filepath.WalkDir(s.DataDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for _, f := range forms {
				if bytes.Contains(data, f) {
					t.Errorf("%s contains the secret value (as %q)", path, f[:12])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 3*3 {
		t.Fatalf("only %d files scanned; expected raft.db, snapshots and keyring on each server", files)
	}
}
