package api

import (
	"errors"
	"fmt"
)

// Error codes carried in the "code" field of every error response.
const (
	CodeBadRequest   = "bad_request"
	CodeInvalidName  = "invalid_name"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "too_large"
	CodeNoLeader     = "no_leader"
	CodeInternal     = "internal"
	CodeUnavailable  = "unavailable"
)

// Error is the body of every non-2xx response:
// {"error":{"code":"...","message":"..."}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorBody is the JSON envelope around an Error.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// IsCode reports whether err is an API error with the given code.
func IsCode(err error, code string) bool {
	var apiErr *Error
	return errors.As(err, &apiErr) && apiErr.Code == code
}
