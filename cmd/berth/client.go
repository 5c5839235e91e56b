package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

// settings are what `berth login` saves.
type settings struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
}

func settingsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config dir: %w", err)
	}
	return filepath.Join(dir, "berth", "config.json"), nil
}

func loadSettings() (settings, error) {
	var s settings
	p, err := settingsPath()
	if err != nil {
		return s, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read %s: %w", p, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s is not valid JSON (delete it and run 'berth login'): %w", p, err)
	}
	return s, nil
}

func saveSettings(s settings) (string, error) {
	p, err := settingsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	return p, os.Chmod(p, 0o600)
}

// newClient builds an API client from --addr/--token, BERTH_ADDR/BERTH_TOKEN,
// or the settings saved by `berth login`, in that order.
func newClient(c *cli.Context) (*api.Client, error) {
	addr, token := c.String("addr"), c.String("token")
	if addr == "" || token == "" {
		s, err := loadSettings()
		if err != nil {
			return nil, err
		}
		if addr == "" {
			addr = s.Addr
		}
		if token == "" {
			token = s.Token
		}
	}
	return api.NewClient(addr, token, nil), nil
}

// appFlag is the -a APP flag of app commands.
func appFlag() cli.Flag {
	return &cli.StringFlag{Name: "app", Aliases: []string{"a"}, Usage: "app name (default: from the 'berth' git remote)"}
}

// appName returns -a APP, or the app of the current repository's "berth"
// git remote. git runs without a shell, with fixed arguments.
func appName(c *cli.Context) (string, error) {
	name := c.String("app")
	if name == "" {
		out, err := exec.CommandContext(c.Context, "git", "remote", "get-url", "berth").Output()
		if err != nil {
			return "", cli.Exit("no app: pass -a APP, or run inside a git repository with a 'berth' remote", 1)
		}
		name = appFromRemote(strings.TrimSpace(string(out)))
	}
	if err := api.ValidateAppName(name); err != nil {
		return "", err
	}
	return name, nil
}

// appFromRemote extracts APP from ssh://git@host:2222/APP.git or host:APP.git.
func appFromRemote(remote string) string {
	path := remote
	if u, err := url.Parse(remote); err == nil && u.Scheme != "" {
		path = u.Path
	} else if i := strings.LastIndex(remote, ":"); i >= 0 {
		path = remote[i+1:]
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	if i := strings.LastIndex(path, "/"); i >= 0 {
		path = path[i+1:]
	}
	return path
}

// appClient resolves the app and the API client, the prelude of every app
// command.
func appClient(c *cli.Context) (string, *api.Client, error) {
	app, err := appName(c)
	if err != nil {
		return "", nil, err
	}
	cl, err := newClient(c)
	return app, cl, err
}
