package gitreceive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gossh "golang.org/x/crypto/ssh"
)

func TestHostKeyIsCreatedOnceAndReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new-dir", "host_key")
	k1, err := loadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1.PublicKey().Type() != gossh.KeyAlgoED25519 {
		t.Errorf("host key type %s, want ed25519", k1.PublicKey().Type())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v, %v", fi.Mode(), err)
	}
	k2, err := loadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if gossh.FingerprintSHA256(k1.PublicKey()) != gossh.FingerprintSHA256(k2.PublicKey()) {
		t.Error("host key changed on the second start")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("key directory holds %d files, want just the key", len(entries))
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateHostKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable host key: err = %v, want a refusal", err)
	}
}

func TestServerKeepsItsHostKeyAcrossRestarts(t *testing.T) {
	e := newTestEnv(t)
	dir, _ := e.workRepo("w", "web", map[string]string{"a": "1"})
	// Pin the host key, as a user's known_hosts does, then restart.
	known := filepath.Join(e.root, "known_hosts")
	strict := func() []string {
		return append(e.sshArgs(e.key), "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+known)
	}
	pub, err := os.ReadFile(e.cfg.HostKeyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := "[127.0.0.1]:" + e.port + " " + string(gossh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	push := func() result {
		cmd := e.gitCmd(t.Context(), dir, e.key, "push", "berth", "main")
		cmd.Env = append(cmd.Env, "GIT_SSH_COMMAND=ssh "+strings.Join(strict(), " "))
		return run(cmd)
	}
	if r := push(); r.err != nil {
		t.Fatalf("push with a pinned host key: %v", r)
	}
	if err := e.srv.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.cfg.Bind = e.srv.Addr() // same port, so known_hosts still applies
	e.start()
	e.commit(dir, map[string]string{"a": "2"})
	if r := push(); r.err != nil {
		t.Fatalf("push after a restart: %v", r)
	}
}
