package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("s3cr3t-value")
	sealed, err := k.Seal(pt, []byte("app/KEY"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, pt) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k.Open(sealed, []byte("app/KEY"))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v; want %q", got, err, pt)
	}
	if _, err := k.Open(sealed, []byte("other/KEY")); err == nil {
		t.Fatal("Open with another aad succeeded; values could be swapped between apps")
	}
	again, _ := k.Seal(pt, []byte("app/KEY"))
	if bytes.Equal(again, sealed) {
		t.Fatal("two seals of the same value are identical; nonce is not random")
	}
}

func TestSaveLoadIsPrivate(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keyring")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode = %v, want 0600", fi.Mode().Perm())
	}
	k2, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := k.Seal([]byte("x"), nil)
	if got, err := k2.Open(sealed, nil); err != nil || string(got) != "x" {
		t.Fatalf("loaded keyring cannot open: %q %v", got, err)
	}
	if !bytes.Equal(k.MAC("p", []byte("m")), k2.MAC("p", []byte("m"))) {
		t.Fatal("MAC differs between a keyring and its loaded copy")
	}
}

func TestOpenRejectsGarbage(t *testing.T) {
	k, _ := Generate()
	other, _ := Generate()
	sealed, _ := other.Seal([]byte("x"), nil)
	for _, in := range [][]byte{nil, {0, 0, 0, 1}, sealed, {0, 0, 0, 9, 1, 2}} {
		if _, err := k.Open(in, nil); err == nil {
			t.Errorf("Open(%x) succeeded", in)
		}
	}
	if _, err := Parse([]byte(`{"active":2,"keys":[]}`)); err == nil {
		t.Error("Parse accepted a keyring without its active key")
	}
}
