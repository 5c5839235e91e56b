package api

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	appNameRe   = regexp.MustCompile(`^[a-z][a-z0-9-]{1,28}[a-z0-9]$`)
	configKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	tokenNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	branchRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$`)
)

// Limits on names and values, enforced by the server and checked early by
// the CLI.
const (
	MaxConfigValue = 32 << 10
	MaxConfigKey   = 256
)

// ValidateAppName checks an app name: 3–30 characters, lowercase letters,
// digits and dashes, starting with a letter and not ending with a dash.
func ValidateAppName(name string) error {
	if !appNameRe.MatchString(name) {
		return &Error{Code: CodeInvalidName, Message: fmt.Sprintf(
			"invalid app name %q: use 3-30 lowercase letters, digits and dashes, starting with a letter and not ending with a dash", clip(name))}
	}
	return nil
}

// ValidateConfigKey checks a config key against [A-Za-z_][A-Za-z0-9_]*.
func ValidateConfigKey(key string) error {
	if len(key) > MaxConfigKey || !configKeyRe.MatchString(key) {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf(
			"invalid config key %q: keys match [A-Za-z_][A-Za-z0-9_]* (at most %d characters)", clip(key), MaxConfigKey)}
	}
	return nil
}

// ValidateConfigValue checks a config value's size.
func ValidateConfigValue(key, value string) error {
	if len(value) > MaxConfigValue {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf(
			"config value of %s is %d bytes; the limit is %d bytes (32 KiB)", key, len(value), MaxConfigValue)}
	}
	return nil
}

// ValidateTokenName checks a token name: 1–64 letters, digits, '.', '_' or '-'.
func ValidateTokenName(name string) error {
	if !tokenNameRe.MatchString(name) {
		return &Error{Code: CodeInvalidName, Message: fmt.Sprintf(
			"invalid token name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", clip(name))}
	}
	return nil
}

// clip keeps error messages short when the offending input is huge.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ValidateBranch checks a deploy branch name: letters, digits, '.', '_',
// '/' and '-', no "..", at most 100 characters.
func ValidateBranch(b string) error {
	if !branchRe.MatchString(b) || strings.Contains(b, "..") || strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") {
		return &Error{Code: CodeBadRequest, Message: fmt.Sprintf("invalid branch name %q", clip(b))}
	}
	return nil
}
