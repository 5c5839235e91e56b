package state

import (
	"testing"
	"time"
)

// TestReleasesOfSimilarNamesStayApart guards against prefix matches: web's
// releases must not include web2's, nor be deleted with it.
func TestReleasesOfSimilarNamesStayApart(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(0, 0)
	var idx uint64
	write := func(f func(*Txn) error) {
		idx++
		txn := s.Write(idx)
		if err := f(txn); err != nil {
			t.Fatal(err)
		}
		txn.Commit()
	}
	for _, app := range []string{"web", "web2"} {
		write(func(t *Txn) error { _, err := t.CreateApp(app, at); return err })
		for range 3 {
			write(func(t *Txn) error { _, err := t.CreateRelease(NewRelease{App: app, Image: app + "@x"}); return err })
		}
	}
	rels, _, _ := s.Snapshot().Releases(nil, "web")
	if len(rels) != 3 || rels[0].Version != 3 || rels[2].Version != 1 {
		t.Fatalf("web releases = %d, first v%d", len(rels), rels[0].Version)
	}
	for _, r := range rels {
		if r.App != "web" {
			t.Fatalf("web's releases include %s's", r.App)
		}
	}
	write(func(t *Txn) error { return t.DeleteApp("web") })
	if rels, _, _ := s.Snapshot().Releases(nil, "web2"); len(rels) != 3 {
		t.Fatalf("deleting web left web2 with %d releases", len(rels))
	}
}
