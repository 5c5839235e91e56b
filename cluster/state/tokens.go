package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Token is a stored API token. Only a hash of its secret is kept.
type Token struct {
	AccessorID  string
	Name        string
	SecretHash  string
	Role        string
	Apps        []string
	CreatedAt   time.Time
	CreatedBy   string
	CreateIndex uint64
}

// CreateToken inserts a token; names and secrets are unique.
func (t *Txn) CreateToken(tok *Token) error {
	for _, idx := range []struct{ index, val string }{{"id", tok.AccessorID}, {"name", tok.Name}, {"secret", tok.SecretHash}} {
		raw, err := t.txn.First(tableTokens, idx.index, idx.val)
		if err != nil {
			return fmt.Errorf("look up token: %w", err)
		}
		if raw != nil {
			return fmt.Errorf("token %s %q: %w", idx.index, tok.Name, ErrExists)
		}
	}
	cp := *tok
	cp.CreateIndex = t.index
	if err := t.txn.Insert(tableTokens, &cp); err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	return t.bump(tableTokens)
}

// DeleteToken removes a token by accessor ID or name.
func (t *Txn) DeleteToken(idOrName string) (*Token, error) {
	raw, err := t.txn.First(tableTokens, "id", idOrName)
	if err == nil && raw == nil {
		raw, err = t.txn.First(tableTokens, "name", idOrName)
	}
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("token %q: %w", idOrName, ErrNotFound)
	}
	if tok := raw.(*Token); tok.Role == "admin" && t.adminCount() <= 1 {
		return nil, fmt.Errorf("token %q is the last admin token; create another admin token first: %w", tok.Name, ErrLastAdmin)
	}
	if err := t.txn.Delete(tableTokens, raw); err != nil {
		return nil, fmt.Errorf("delete token: %w", err)
	}
	return raw.(*Token), t.bump(tableTokens)
}

// Tokens lists tokens by accessor ID.
func (s *Snapshot) Tokens(ws memdb.WatchSet) ([]*Token, uint64, error) {
	idx := maxIndex(s.txn, ws, tableTokens)
	it, err := s.txn.Get(tableTokens, "name")
	if err != nil {
		return nil, 0, fmt.Errorf("list tokens: %w", err)
	}
	ws.Add(it.WatchCh())
	var out []*Token
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Token))
	}
	return out, idx, nil
}

// TokenBySecretHash finds the token whose secret hashes to hash.
func (s *Snapshot) TokenBySecretHash(hash string) (*Token, error) {
	raw, err := s.txn.First(tableTokens, "secret", hash)
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if raw == nil {
		return nil, ErrNotFound
	}
	return raw.(*Token), nil
}

func (t *Txn) adminCount() int {
	it, err := t.txn.Get(tableTokens, "id")
	if err != nil {
		return 0
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if raw.(*Token).Role == "admin" {
			n++
		}
	}
	return n
}

// TokenByAccessor finds a token by accessor ID, or ErrNotFound.
func (s *Snapshot) TokenByAccessor(id string) (*Token, error) {
	raw, err := s.txn.First(tableTokens, "id", id)
	if err != nil {
		return nil, fmt.Errorf("look up token: %w", err)
	}
	if raw == nil {
		return nil, ErrNotFound
	}
	return raw.(*Token), nil
}
