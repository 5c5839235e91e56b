package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/forward"
	"github.com/berthpaas/berth/cluster/raftnode"
	"github.com/berthpaas/berth/cluster/state"
)

var codeStatus = map[string]int{
	api.CodeBadRequest:   http.StatusBadRequest,
	api.CodeInvalidName:  http.StatusBadRequest,
	api.CodeUnauthorized: http.StatusUnauthorized,
	api.CodeForbidden:    http.StatusForbidden,
	api.CodeNotFound:     http.StatusNotFound,
	api.CodeConflict:     http.StatusConflict,
	api.CodeTooLarge:     http.StatusRequestEntityTooLarge,
	api.CodeNoLeader:     http.StatusServiceUnavailable,
	api.CodeInternal:     http.StatusInternalServerError,
	api.CodeUnavailable:  http.StatusServiceUnavailable,
}

// badRequest makes a 400 error with a formatted message.
func badRequest(format string, args ...any) error {
	return &api.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps internal errors to the wire error.
func toAPIError(err error) *api.Error {
	var apiErr *api.Error
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &maxBytes):
		return &api.Error{Code: api.CodeTooLarge, Message: fmt.Sprintf("request body is over the %d-byte limit", maxBytes.Limit)}
	case errors.Is(err, state.ErrNotFound):
		return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, state.ErrExists):
		return &api.Error{Code: api.CodeConflict, Message: err.Error()}
	case errors.Is(err, state.ErrAlreadyBootstrapped):
		return &api.Error{Code: api.CodeConflict, Message: "the cluster is already bootstrapped: its root token was created before and cannot be shown again"}
	case errors.Is(err, state.ErrLastAdmin), errors.Is(err, state.ErrBuildRunning):
		return &api.Error{Code: api.CodeConflict, Message: err.Error()}
	case errors.Is(err, errNoKeyring):
		return &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
	case errors.Is(err, auth.ErrNoToken):
		return &api.Error{Code: api.CodeUnauthorized, Message: "no token: set BERTH_TOKEN or run 'berth login'"}
	case errors.Is(err, auth.ErrUnknownToken):
		return &api.Error{Code: api.CodeUnauthorized, Message: "the token is unknown or was revoked: check BERTH_TOKEN or run 'berth login'"}
	case errors.Is(err, auth.ErrForbidden):
		return &api.Error{Code: api.CodeForbidden, Message: err.Error()}
	case errors.Is(err, raftnode.ErrNoLeader), errors.Is(err, raftnode.ErrNotLeader),
		errors.Is(err, raftnode.ErrUncertain), errors.Is(err, forward.ErrHop), errors.Is(err, errLeaderUnreachable):
		return &api.Error{Code: api.CodeNoLeader, Message: err.Error() + "; check 'berth cluster status' (a majority of servers must be up)"}
	}
	return &api.Error{Code: api.CodeInternal, Message: err.Error()}
}

var errLeaderUnreachable = errors.New("the leader could not be reached")

// writeError writes err as the JSON error body with its status.
func writeError(w http.ResponseWriter, err error) {
	e := toAPIError(err)
	status := codeStatus[e.Code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, api.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}
