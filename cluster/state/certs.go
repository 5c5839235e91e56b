package state

import (
	"fmt"
	"strings"
	"time"
)

// Cert is one entry of the routers' shared certificate storage (certmagic
// keys: certificates, private keys, ACME account data, challenge tokens).
// Value is sealed with the cluster keyring by the API before it reaches
// raft: private keys are never stored in the clear.
type Cert struct {
	Key      string
	Value    []byte
	Modified time.Time
}

// CertLock is a lock of the shared storage (certmagic takes one before it
// orders a certificate, so that several routers never order it twice).
// It expires on its own, so a router that died does not hold it forever.
type CertLock struct {
	Name    string
	Owner   string
	Expires time.Time
}

// PutCert stores a value under key.
func (t *Txn) PutCert(key string, value []byte, at time.Time) error {
	if err := t.txn.Insert(tableCerts, &Cert{Key: key, Value: value, Modified: at}); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return t.bump(tableCerts)
}

// DeleteCert deletes key and every key under key + "/"; ErrNotFound if
// there was none.
func (t *Txn) DeleteCert(key string) error {
	n := 0
	if raw, err := t.txn.First(tableCerts, "id", key); err != nil {
		return fmt.Errorf("look up %s: %w", key, err)
	} else if raw != nil {
		if err := t.txn.Delete(tableCerts, raw); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		n++
	}
	m, err := t.txn.DeleteAll(tableCerts, "id_prefix", strings.TrimSuffix(key, "/")+"/")
	if err != nil {
		return fmt.Errorf("delete under %s: %w", key, err)
	}
	if n+m == 0 {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return t.bump(tableCerts)
}

// Cert returns one entry or ErrNotFound.
func (s *Snapshot) Cert(key string) (*Cert, error) {
	raw, err := s.txn.First(tableCerts, "id", key)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", key, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	return raw.(*Cert), nil
}

// CertKeys lists the keys under prefix ("" for all), in order.
func (s *Snapshot) CertKeys(prefix string) ([]string, error) {
	it, err := s.txn.Get(tableCerts, "id_prefix", prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var out []string
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Cert).Key)
	}
	return out, nil
}

// AcquireCertLock takes name for owner until expires. The owner may renew
// its own lock; an expired lock (by now, the leader's clock in the
// command) is taken over. Another owner's live lock gives ErrLocked.
func (t *Txn) AcquireCertLock(name, owner string, now, expires time.Time) error {
	raw, err := t.txn.First(tableCertLocks, "id", name)
	if err != nil {
		return fmt.Errorf("look up lock: %w", err)
	}
	if raw != nil {
		if l := raw.(*CertLock); l.Owner != owner && now.Before(l.Expires) {
			return fmt.Errorf("lock %s is held until %s: %w", name, l.Expires.Format(time.RFC3339), ErrLocked)
		}
	}
	if err := t.txn.Insert(tableCertLocks, &CertLock{Name: name, Owner: owner, Expires: expires}); err != nil {
		return fmt.Errorf("take lock: %w", err)
	}
	return t.bump(tableCertLocks)
}

// ReleaseCertLock frees name if owner holds it; releasing a lock one does
// not hold (any more) is not an error.
func (t *Txn) ReleaseCertLock(name, owner string) error {
	raw, err := t.txn.First(tableCertLocks, "id", name)
	if err != nil {
		return fmt.Errorf("look up lock: %w", err)
	}
	if raw == nil || raw.(*CertLock).Owner != owner {
		return nil
	}
	if err := t.txn.Delete(tableCertLocks, raw); err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return t.bump(tableCertLocks)
}
