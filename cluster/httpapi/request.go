package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/state"
)

// decodeBody reads exactly one JSON object into v, rejecting unknown fields.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("reading request body: %v", err)
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return badRequest("request body is empty; send a JSON object")
	}
	if trimmed[0] != '{' {
		return badRequest("request body must be a JSON object {...}")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return badRequest("malformed JSON at byte %d: %v", syn.Offset, err)
		case errors.As(err, &typ):
			return badRequest("field %q must be a %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return badRequest("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

// callerToken finds the stored token of r's bearer secret in snap.
func callerToken(r *http.Request, snap *state.Snapshot) (*state.Token, error) {
	h := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(h, "Bearer ")
	secret = strings.TrimSpace(secret)
	if !ok || secret == "" {
		if h != "" {
			return nil, fmt.Errorf("authorization header is not 'Bearer <token>': %w", auth.ErrNoToken)
		}
		return nil, auth.ErrNoToken
	}
	tok, err := snap.TokenBySecretHash(auth.HashSecret(secret))
	if err != nil {
		return nil, auth.ErrUnknownToken
	}
	return tok, nil
}

// identify resolves the bearer token of r against snap.
func identify(r *http.Request, snap *state.Snapshot) (*auth.Identity, error) {
	tok, err := callerToken(r, snap)
	if err != nil {
		return nil, err
	}
	return &auth.Identity{AccessorID: tok.AccessorID, Name: tok.Name, Role: tok.Role, Apps: tok.Apps}, nil
}
