package gitreceive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
)

// Caller is who is on the other end of an SSH connection, as Auth found it.
type Caller struct {
	// Name identifies the caller in logs and is passed to Authorize.
	Name string
	// KeyFingerprint is the SHA256 fingerprint of the key the caller proved
	// to hold; filled in by the server when Authenticate leaves it empty.
	KeyFingerprint string
	// TokenAccessor links the key to a berth token, when there is one.
	TokenAccessor string
}

// Auth decides who may connect and what they may do. It is the narrow view
// gitreceive needs of berth's keys, tokens and apps.
type Auth interface {
	// Authenticate maps a public key to a caller; an unknown key is an
	// error and the connection is refused at authentication. It may be
	// called for keys the client offers but does not end up proving it
	// holds, so it must not have side effects that assume possession.
	Authenticate(key gossh.PublicKey) (Caller, error)
	// Authorize reports whether c may push to (and fetch from) app. A
	// non-nil error is shown to the caller, so its message should say what
	// is wrong ("unknown app", "no deploy right on web") and nothing more.
	Authorize(ctx context.Context, c Caller, app string) error
	// DeployBranches lists the branches whose pushes deploy app, e.g.
	// ["main", "master"]. Pushes to other branches are stored only.
	DeployBranches(ctx context.Context, app string) ([]string, error)
}

// DeployRequest is one deploy triggered by a push.
type DeployRequest struct {
	App    string
	Branch string // without "refs/heads/"
	Commit string // full hex object name
	Caller Caller
	// Source is a tar stream (git archive --format=tar) of the commit's
	// tree. It is read from the pushing hook while Deploy runs; reading it
	// fails if the push is abandoned.
	Source io.Reader
}

// Pipeline builds and deploys pushed code.
type Pipeline interface {
	// Deploy builds and deploys; it writes progress lines to out (shown to
	// the pusher as "remote: ..."); a non-nil error rejects the push with
	// its message. ctx is canceled when the push is abandoned (git killed,
	// connection lost) or the server stops.
	Deploy(ctx context.Context, req DeployRequest, out io.Writer) error
}

// DefaultMaxPushBytes is the push size limit when Config.MaxPushBytes is 0.
const DefaultMaxPushBytes int64 = 1 << 30

// Config configures a Server.
type Config struct {
	// Bind is the SSH listen address, e.g. "127.0.0.1:2222" or ":0".
	Bind string
	// HostKeyPath is the ed25519 host key; it is generated (mode 0600) on
	// first start and reused after. A key readable by group or others is
	// refused, as OpenSSH does.
	HostKeyPath string
	// ReposDir holds the bare repositories, ReposDir/<app>.git, created on
	// an app's first push.
	ReposDir string
	// HookBinary is the absolute path of the berth executable that the
	// pre-receive hook runs as `berth git-hook pre-receive`. Default:
	// os.Executable().
	HookBinary string
	// MaxPushBytes limits the size of one push (default 1 GiB). git
	// enforces it on the pack (receive.maxInputSize); the server also
	// counts the bytes sent on the SSH channel, with 1 MiB of slack for the
	// protocol around the pack.
	MaxPushBytes int64
	Auth         Auth
	Pipeline     Pipeline
	// Logger defaults to slog.Default() with component=gitreceive.
	Logger *slog.Logger
}

// validate checks cfg and fills in defaults.
func (cfg *Config) validate() error {
	var errs []error
	if cfg.Bind == "" {
		errs = append(errs, errors.New("Bind is required (e.g. 127.0.0.1:2222)"))
	}
	if cfg.HostKeyPath == "" {
		errs = append(errs, errors.New("HostKeyPath is required"))
	}
	if cfg.ReposDir == "" {
		errs = append(errs, errors.New("ReposDir is required"))
	} else if abs, err := filepath.Abs(cfg.ReposDir); err != nil {
		errs = append(errs, fmt.Errorf("ReposDir: %w", err))
	} else {
		cfg.ReposDir = abs
	}
	if cfg.Auth == nil {
		errs = append(errs, errors.New("Auth is required"))
	}
	if cfg.Pipeline == nil {
		errs = append(errs, errors.New("Pipeline is required"))
	}
	if cfg.MaxPushBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxPushBytes is %d; it must be positive (0 means the default, 1 GiB)", cfg.MaxPushBytes))
	} else if cfg.MaxPushBytes == 0 {
		cfg.MaxPushBytes = DefaultMaxPushBytes
	}
	if cfg.HookBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			errs = append(errs, fmt.Errorf("HookBinary: find the berth executable: %w", err))
		}
		cfg.HookBinary = exe
	}
	if cfg.HookBinary != "" {
		if !filepath.IsAbs(cfg.HookBinary) {
			errs = append(errs, fmt.Errorf("HookBinary %q must be an absolute path", cfg.HookBinary))
		} else if fi, err := os.Stat(cfg.HookBinary); err != nil {
			errs = append(errs, fmt.Errorf("HookBinary: %w", err))
		} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			errs = append(errs, fmt.Errorf("HookBinary %s is not an executable file", cfg.HookBinary))
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default().With("component", "gitreceive")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gitreceive config: %w", err)
	}
	return nil
}
