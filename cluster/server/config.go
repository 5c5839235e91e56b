package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
)

// Duration is a time.Duration written as "500ms" in config files.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("durations are strings like \"500ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// RaftConfig tunes raft. Zero values take the defaults.
type RaftConfig struct {
	HeartbeatTimeout   Duration `json:"heartbeat_timeout,omitempty"`
	ElectionTimeout    Duration `json:"election_timeout,omitempty"`
	LeaderLeaseTimeout Duration `json:"leader_lease_timeout,omitempty"`
	SnapshotThreshold  uint64   `json:"snapshot_threshold,omitempty"`
	SnapshotInterval   Duration `json:"snapshot_interval,omitempty"`
	TrailingLogs       uint64   `json:"trailing_logs,omitempty"`
}

// Config is a server's user-facing configuration: flags and the optional
// JSON config file both fill it; unknown keys in the file are errors.
type Config struct {
	Name            string     `json:"name,omitempty"`
	DataDir         string     `json:"data_dir,omitempty"`
	Bind            string     `json:"bind,omitempty"`
	Advertise       string     `json:"advertise,omitempty"`
	RaftBind        string     `json:"raft_bind,omitempty"`
	RaftAdvertise   string     `json:"raft_advertise,omitempty"`
	BootstrapExpect int        `json:"bootstrap_expect,omitempty"`
	Join            []string   `json:"join,omitempty"`
	JoinToken       string     `json:"join_token,omitempty"`
	Dev             bool       `json:"dev,omitempty"`
	MaxBodyBytes    int64      `json:"max_body_bytes,omitempty"`
	Raft            RaftConfig `json:"raft,omitempty"`
	// GitBind is the SSH git endpoint; GitAdvertise the host:port put in
	// git remotes (default: GitBind).
	GitBind      string `json:"git_bind,omitempty"`
	GitAdvertise string `json:"git_advertise,omitempty"`
	// RegistryBind is the embedded OCI registry's address.
	RegistryBind string      `json:"registry_bind,omitempty"`
	Build        BuildConfig `json:"build,omitempty"`
	// Runtime runs releases: "docker" (one host; the default when a Docker
	// engine is reachable), "nomad" (many hosts, Consul discovery) or "none".
	Runtime string      `json:"runtime,omitempty"`
	Nomad   NomadConfig `json:"nomad,omitempty"`
	// RuntimeCluster labels this cluster's containers so that several
	// clusters can share a Docker engine (default "berth").
	RuntimeCluster string `json:"runtime_cluster,omitempty"`
	// Drain is how long old instances finish requests after leaving the
	// router, before SIGTERM (default 2s).
	Drain Duration `json:"drain,omitempty"`
	// MaxScale caps one process type's instance count (default 100).
	MaxScale int `json:"max_scale,omitempty"`
	// AppsDomain gives every app the host APP.<AppsDomain> on the routers
	// (--dev default: localhost, so apps answer on APP.localhost). Give
	// every server the same value.
	AppsDomain string `json:"apps_domain,omitempty"`
	// AppsURL is how users reach the routers, as scheme and optional port
	// ("https://", "http://:8080"); with AppsDomain it makes apps' web
	// URLs. Default "http://" ("http://:8080" in --dev).
	AppsURL string `json:"apps_url,omitempty"`
	// RouterAckTimeout bounds how long a deploy waits for every live
	// router to serve its cutover before old instances drain (default 10s).
	RouterAckTimeout Duration `json:"router_ack_timeout,omitempty"`
}

// NomadConfig reaches the Nomad and Consul clusters of the nomad runtime.
type NomadConfig struct {
	Addr        string   `json:"addr,omitempty"` // default http://127.0.0.1:4646
	Token       string   `json:"token,omitempty"`
	ConsulAddr  string   `json:"consul_addr,omitempty"` // default 127.0.0.1:8500
	ConsulToken string   `json:"consul_token,omitempty"`
	Datacenters []string `json:"datacenters,omitempty"` // default ["dc1"]
	Region      string   `json:"region,omitempty"`
	// TLS to Nomad (PEM files; any of them makes a host:port Addr https).
	// The CLI fills what is empty here from NOMAD_CACERT,
	// NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY, NOMAD_TLS_SERVER_NAME and
	// NOMAD_SKIP_VERIFY.
	CACert        string `json:"ca_cert,omitempty"`
	ClientCert    string `json:"client_cert,omitempty"`
	ClientKey     string `json:"client_key,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
	SkipVerify    bool   `json:"skip_verify,omitempty"`
	// TLS to Consul, the same way (CONSUL_CACERT, CONSUL_CLIENT_CERT,
	// CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME; CONSUL_HTTP_SSL_VERIFY=false).
	ConsulCACert        string `json:"consul_ca_cert,omitempty"`
	ConsulClientCert    string `json:"consul_client_cert,omitempty"`
	ConsulClientKey     string `json:"consul_client_key,omitempty"`
	ConsulTLSServerName string `json:"consul_tls_server_name,omitempty"`
	ConsulSkipVerify    bool   `json:"consul_skip_verify,omitempty"`
}

// BuildConfig tunes builds on this server.
type BuildConfig struct {
	// Disabled turns off builds, the registry and the git endpoint.
	Disabled bool `json:"disabled,omitempty"`
	// Stack is the base image of buildpack builds (default debian:bookworm).
	Stack string `json:"stack,omitempty"`
	// CAFiles are extra PEM CA certificates builds trust (intercepting proxies).
	CAFiles    []string `json:"ca_files,omitempty"`
	HTTPProxy  string   `json:"http_proxy,omitempty"`
	HTTPSProxy string   `json:"https_proxy,omitempty"`
	NoProxy    string   `json:"no_proxy,omitempty"`
	// MaxPushBytes limits a git push or an uploaded source (default 1 GiB).
	MaxPushBytes int64 `json:"max_push_bytes,omitempty"`
	// RetainReleases is how many releases per app keep their image (default 10).
	RetainReleases int `json:"retain_releases,omitempty"`
}

// Defaults of a server.
const (
	DefaultBind         = "127.0.0.1:4880"
	DefaultRaftBind     = "127.0.0.1:4881"
	DefaultGitBind      = "127.0.0.1:2222"
	DefaultRegistryBind = "127.0.0.1:5000"
)

// Default raft timings suit a LAN: a dead leader is replaced in about a
// second, without spurious elections on a busy 2-core machine.
const (
	defaultHeartbeat   = 500 * time.Millisecond
	defaultElection    = 500 * time.Millisecond
	defaultLeaderLease = 250 * time.Millisecond
)

// LoadFile reads a JSON config file over c, rejecting unknown keys.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// applyDefaults fills what is unset.
func (c *Config) applyDefaults() error {
	if c.Bind == "" {
		c.Bind = DefaultBind
	}
	if c.RaftBind == "" {
		c.RaftBind = DefaultRaftBind
	}
	if c.Advertise == "" {
		c.Advertise = c.Bind
	}
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = c.RaftBind
	}
	if c.GitBind == "" {
		c.GitBind = DefaultGitBind
	}
	if c.GitAdvertise == "" {
		c.GitAdvertise = c.GitBind
	}
	if c.RegistryBind == "" {
		c.RegistryBind = DefaultRegistryBind
	}
	if c.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("no --name and no hostname: %w", err)
		}
		c.Name = h
	}
	if c.Dev || (c.BootstrapExpect == 0 && len(c.Join) == 0) {
		c.BootstrapExpect = 1
	}
	if c.Dev && c.AppsDomain == "" {
		c.AppsDomain = "localhost"
	}
	if c.AppsURL == "" {
		c.AppsURL = "http://"
		if c.Dev {
			c.AppsURL = "http://:8080"
		}
	}
	if c.RouterAckTimeout == 0 {
		c.RouterAckTimeout = Duration(10 * time.Second)
	}
	r := &c.Raft
	for _, p := range []struct {
		dst *Duration
		def Duration
	}{
		{&r.HeartbeatTimeout, Duration(defaultHeartbeat)}, {&r.ElectionTimeout, Duration(defaultElection)},
		{&r.LeaderLeaseTimeout, Duration(defaultLeaderLease)},
	} {
		if *p.dst == 0 {
			*p.dst = p.def
		}
	}
	return nil
}

// appsScheme splits AppsURL into scheme and port (":8080" or "").
func (c *Config) appsScheme() (scheme, port string, err error) {
	u := c.AppsURL
	for _, sc := range []string{"http", "https"} {
		if rest, ok := strings.CutPrefix(u, sc+"://"); ok {
			if rest == "" {
				return sc, "", nil
			}
			if p, err := strconv.Atoi(strings.TrimPrefix(rest, ":")); err == nil && rest[0] == ':' && p > 0 && p < 65536 {
				return sc, rest, nil
			}
		}
	}
	return "", "", fmt.Errorf("--apps-url %q: use http:// or https:// with an optional :port, like http://:8080", u)
}

// Validate checks the configuration after defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required (or use --dev)"))
	} else if !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("data dir %q must be an absolute path", c.DataDir))
	}
	for _, a := range []struct{ what, addr string }{{"--bind", c.Bind}, {"--raft-bind", c.RaftBind}, {"--advertise", c.Advertise},
		{"--raft-advertise", c.RaftAdvertise}, {"--git-bind", c.GitBind}, {"--registry-bind", c.RegistryBind}} {
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q must be host:port", a.what, a.addr))
		}
	}
	for _, a := range []struct{ what, addr string }{{"--advertise", c.Advertise}, {"--raft-advertise", c.RaftAdvertise}} {
		if host, _, err := net.SplitHostPort(a.addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				errs = append(errs, fmt.Errorf("%s %q: other servers cannot dial an unspecified address; give a reachable one", a.what, a.addr))
			}
		}
	}
	if c.BootstrapExpect < 0 || c.BootstrapExpect > 7 {
		errs = append(errs, fmt.Errorf("--bootstrap-expect %d: use 1, 3 or 5", c.BootstrapExpect))
	}
	if c.BootstrapExpect > 1 && len(c.Join) == 0 {
		errs = append(errs, fmt.Errorf("--bootstrap-expect %d needs --join with the other servers' API addresses", c.BootstrapExpect))
	}
	for _, f := range c.Build.CAFiles {
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("build CA file: %w", err))
		}
	}
	switch c.Runtime {
	case "", "docker", "nomad", "none":
	default:
		errs = append(errs, fmt.Errorf("runtime %q: use docker, nomad or none", c.Runtime))
	}
	if c.MaxScale < 0 {
		errs = append(errs, errors.New("max_scale must be positive"))
	}
	if c.AppsDomain != "" {
		if d, err := api.NormalizeDomain(c.AppsDomain); err != nil && c.AppsDomain != "localhost" {
			errs = append(errs, fmt.Errorf("--apps-domain: %w", err))
		} else if err == nil {
			c.AppsDomain = d
		}
	}
	if _, _, err := c.appsScheme(); err != nil {
		errs = append(errs, err)
	}
	if c.Dev && len(c.Join) > 0 {
		errs = append(errs, errors.New("--dev runs a single server; drop --join"))
	}
	return errors.Join(errs...)
}
