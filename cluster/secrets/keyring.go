// Package secrets seals config values with AES-256-GCM before they enter the
// raft log. The keyring lives in a 0600 file beside, not inside, the raft
// data, and is handed to servers when they join; the raft log, the log store
// and snapshots only ever hold ciphertext.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNoKey means a ciphertext names a key the keyring does not hold.
var ErrNoKey = errors.New("keyring has no such key")

// Key is one AES-256 key.
type Key struct {
	ID     uint32 `json:"id"`
	Secret []byte `json:"secret"`
}

// Keyring holds the active key and older keys still needed to open values.
type Keyring struct {
	Active uint32 `json:"active"`
	Keys   []Key  `json:"keys"`

	aeads map[uint32]cipher.AEAD
}

// Generate returns a keyring with one fresh random key.
func Generate() (*Keyring, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	k := &Keyring{Active: 1, Keys: []Key{{ID: 1, Secret: secret}}}
	return k, k.init()
}

// Parse decodes a keyring from its JSON form.
func Parse(b []byte) (*Keyring, error) {
	var k Keyring
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("parse keyring: %w", err)
	}
	return &k, k.init()
}

func (k *Keyring) init() error {
	k.aeads = make(map[uint32]cipher.AEAD, len(k.Keys))
	for _, key := range k.Keys {
		if len(key.Secret) != 32 {
			return fmt.Errorf("keyring key %d is %d bytes, want 32", key.ID, len(key.Secret))
		}
		block, err := aes.NewCipher(key.Secret)
		if err != nil {
			return fmt.Errorf("keyring key %d: %w", key.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return fmt.Errorf("keyring key %d: %w", key.ID, err)
		}
		k.aeads[key.ID] = aead
	}
	if k.aeads[k.Active] == nil {
		return fmt.Errorf("keyring's active key %d is missing", k.Active)
	}
	return nil
}

// Marshal returns the keyring's JSON form.
func (k *Keyring) Marshal() ([]byte, error) {
	return json.Marshal(k)
}

// Load reads a keyring file.
func Load(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	return Parse(b)
}

// Save writes the keyring to path with mode 0600, atomically.
func (k *Keyring) Save(path string) error {
	b, err := k.Marshal()
	if err != nil {
		return fmt.Errorf("encode keyring: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// Seal encrypts plaintext with the active key. aad binds the ciphertext to
// its place (app and key name) so sealed values cannot be swapped around.
// The output is keyID(4) | nonce(12) | ciphertext+tag.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	aead := k.aeads[k.Active]
	out := make([]byte, 4+aead.NonceSize(), 4+aead.NonceSize()+len(plaintext)+aead.Overhead())
	binary.BigEndian.PutUint32(out, k.Active)
	if _, err := rand.Read(out[4:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return aead.Seal(out, out[4:], plaintext, aad), nil
}

// Open decrypts what Seal produced.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 4 {
		return nil, errors.New("open: sealed value too short")
	}
	id := binary.BigEndian.Uint32(sealed)
	aead := k.aeads[id]
	if aead == nil {
		return nil, fmt.Errorf("open: key %d: %w", id, ErrNoKey)
	}
	ns := aead.NonceSize()
	if len(sealed) < 4+ns {
		return nil, errors.New("open: sealed value too short")
	}
	pt, err := aead.Open(nil, sealed[4:4+ns], sealed[4+ns:], aad)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return pt, nil
}

// MAC returns an HMAC-SHA256 of msg under a key derived from the active key
// for purpose. Servers use it to authenticate what they tell each other
// (forwarded requests) without a second shared secret.
func (k *Keyring) MAC(purpose string, msg []byte) []byte {
	var secret []byte
	for _, key := range k.Keys {
		if key.ID == k.Active {
			secret = key.Secret
		}
	}
	d := hmac.New(sha256.New, secret)
	d.Write([]byte("berth/" + purpose))
	m := hmac.New(sha256.New, d.Sum(nil))
	m.Write(msg)
	return m.Sum(nil)
}
