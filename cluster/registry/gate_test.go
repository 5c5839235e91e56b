package registry

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestPendingExpires(t *testing.T) {
	var p pendingSet
	now := time.Now()
	old, fresh := digest.FromString("old"), digest.FromString("fresh")
	p.add(now.Add(-2*pendingTTL), old)
	p.add(now, fresh, "not-a-digest", "")
	live := p.live(now)
	if live[old] || !live[fresh] || len(live) != 1 {
		t.Fatalf("live = %v", live)
	}
	p.remove(fresh)
	if len(p.live(now)) != 0 {
		t.Fatal("remove did not remove")
	}
}
