package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthpaas/berth/cluster/server"
	consul "github.com/hashicorp/consul/api"
	"github.com/urfave/cli/v2"
)

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run a berth control-plane server",
		Description: `A cluster has 1, 3 or 5 servers. Try berth with one:

   berth server --dev

Form a three-server cluster (run on each, with the others in --join), then
create the root token once:

   berth server --data-dir /var/lib/berth --name s1 --bind 10.0.0.1:4880 \
       --raft-bind 10.0.0.1:4881 --bootstrap-expect 3 --join 10.0.0.2:4880 --join 10.0.0.3:4880
   berth cluster bootstrap

Add a server to a running cluster with --join and an admin --join-token.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dev", Usage: "single-node server for trying berth; bootstraps itself and prints a root token"},
			&cli.StringFlag{Name: "config", Usage: "JSON config file (flags override it; unknown keys are errors)"},
			&cli.StringFlag{Name: "data-dir", Usage: "where raft state, the keyring and (in --dev) the root token live"},
			&cli.StringFlag{Name: "name", Usage: "unique server name (default: hostname)"},
			&cli.StringFlag{Name: "bind", Usage: "HTTP API address (default " + server.DefaultBind + ")"},
			&cli.StringFlag{Name: "advertise", Usage: "API address other servers use (default: --bind)"},
			&cli.StringFlag{Name: "raft-bind", Usage: "raft address (default " + server.DefaultRaftBind + ")"},
			&cli.StringFlag{Name: "raft-advertise", Usage: "raft address other servers use (default: --raft-bind)"},
			&cli.IntFlag{Name: "bootstrap-expect", Usage: "form a new cluster once this many servers (1, 3 or 5) are known"},
			&cli.StringSliceFlag{Name: "join", Usage: "API address of another server (repeatable)"},
			&cli.StringFlag{Name: "git-bind", Usage: "SSH git endpoint address (default " + server.DefaultGitBind + ")"},
			&cli.StringFlag{Name: "git-advertise", Usage: "host:port put in git remotes (default: --git-bind)"},
			&cli.StringFlag{Name: "registry-bind", Usage: "embedded OCI registry address (default " + server.DefaultRegistryBind + ")"},
			&cli.StringFlag{Name: "stack", Usage: "base image of buildpack builds (default debian:bookworm)"},
			&cli.StringSliceFlag{Name: "build-ca-file", Usage: "extra PEM CA certificate that builds trust (repeatable)"},
			&cli.BoolFlag{Name: "no-builds", Usage: "run without builds, registry and git endpoint"},
			&cli.StringFlag{Name: "apps-domain", Usage: "apps answer on APP.<apps-domain> (--dev default: localhost)"},
			&cli.StringFlag{Name: "apps-url", Usage: "scheme and port users reach routers on, for web URLs (default http://, --dev http://:8080)"},
			&cli.StringFlag{Name: "router-http", Usage: "run a router in this server on this address (--dev default 127.0.0.1:8080)"},
			&cli.StringFlag{Name: "router-https", Usage: "HTTPS address of the router in this server (--dev default 127.0.0.1:8443, internal CA)"},
			&cli.StringFlag{Name: "router-token", Usage: "token of the router in this server (default: --dev's root token)", EnvVars: []string{"BERTH_ROUTER_TOKEN"}},
			&cli.BoolFlag{Name: "no-router", Usage: "do not run a router in this server (--dev runs one)"},
			&cli.StringFlag{Name: "runtime", Usage: "what runs releases: docker (default with a Docker engine), nomad or none"},
			&cli.StringFlag{Name: "nomad-addr", Usage: "Nomad API address (nomad runtime)", EnvVars: []string{"NOMAD_ADDR"}},
			&cli.StringFlag{Name: "nomad-token", Usage: "Nomad ACL token", EnvVars: []string{"NOMAD_TOKEN"}},
			&cli.StringFlag{Name: "consul-addr", Usage: "Consul HTTP address (nomad runtime)", EnvVars: []string{"CONSUL_HTTP_ADDR"}},
			&cli.StringFlag{Name: "consul-token", Usage: "Consul ACL token", EnvVars: []string{"CONSUL_HTTP_TOKEN"}},
			&cli.StringFlag{Name: "nomad-ca-cert", Usage: "PEM CA file Nomad's certificate must chain to; any TLS option makes a host:port --nomad-addr https (default $NOMAD_CACERT)"},
			&cli.StringFlag{Name: "nomad-client-cert", Usage: "PEM client certificate berth presents to Nomad (default $NOMAD_CLIENT_CERT)"},
			&cli.StringFlag{Name: "nomad-client-key", Usage: "PEM key of --nomad-client-cert (default $NOMAD_CLIENT_KEY)"},
			&cli.StringFlag{Name: "nomad-tls-server-name", Usage: "name Nomad's certificate must hold, e.g. server.global.nomad (default $NOMAD_TLS_SERVER_NAME)"},
			&cli.BoolFlag{Name: "nomad-skip-verify", Usage: "accept any certificate from Nomad, for trials only (default $NOMAD_SKIP_VERIFY)"},
			&cli.StringFlag{Name: "consul-ca-cert", Usage: "PEM CA file Consul's certificate must chain to; any TLS option makes a host:port --consul-addr https (default $CONSUL_CACERT)"},
			&cli.StringFlag{Name: "consul-client-cert", Usage: "PEM client certificate berth presents to Consul (default $CONSUL_CLIENT_CERT)"},
			&cli.StringFlag{Name: "consul-client-key", Usage: "PEM key of --consul-client-cert (default $CONSUL_CLIENT_KEY)"},
			&cli.StringFlag{Name: "consul-tls-server-name", Usage: "name Consul's certificate must hold, e.g. server.dc1.consul (default $CONSUL_TLS_SERVER_NAME)"},
			&cli.BoolFlag{Name: "consul-skip-verify", Usage: "accept any certificate from Consul, for trials only (default: CONSUL_HTTP_SSL_VERIFY=false)"},
			&cli.StringFlag{Name: "join-token", Usage: "admin token to join a cluster that is already bootstrapped", EnvVars: []string{"BERTH_JOIN_TOKEN"}},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.BoolFlag{Name: "log-json", Usage: "log in JSON"},
		},
		Action: runServer,
	}
}

func runServer(c *cli.Context) error {
	var cfg server.Config
	if p := c.String("config"); p != "" {
		if err := cfg.LoadFile(p); err != nil {
			return err
		}
	}
	str := func(flag string, dst *string) {
		if c.IsSet(flag) {
			*dst = c.String(flag)
		}
	}
	str("data-dir", &cfg.DataDir)
	str("name", &cfg.Name)
	str("bind", &cfg.Bind)
	str("advertise", &cfg.Advertise)
	str("raft-bind", &cfg.RaftBind)
	str("raft-advertise", &cfg.RaftAdvertise)
	str("join-token", &cfg.JoinToken)
	str("git-bind", &cfg.GitBind)
	str("git-advertise", &cfg.GitAdvertise)
	str("registry-bind", &cfg.RegistryBind)
	str("stack", &cfg.Build.Stack)
	str("apps-domain", &cfg.AppsDomain)
	str("apps-url", &cfg.AppsURL)
	str("runtime", &cfg.Runtime)
	str("nomad-addr", &cfg.Nomad.Addr)
	str("nomad-token", &cfg.Nomad.Token)
	str("consul-addr", &cfg.Nomad.ConsulAddr)
	str("consul-token", &cfg.Nomad.ConsulToken)
	str("nomad-ca-cert", &cfg.Nomad.CACert)
	str("nomad-client-cert", &cfg.Nomad.ClientCert)
	str("nomad-client-key", &cfg.Nomad.ClientKey)
	str("nomad-tls-server-name", &cfg.Nomad.TLSServerName)
	str("consul-ca-cert", &cfg.Nomad.ConsulCACert)
	str("consul-client-cert", &cfg.Nomad.ConsulClientCert)
	str("consul-client-key", &cfg.Nomad.ConsulClientKey)
	str("consul-tls-server-name", &cfg.Nomad.ConsulTLSServerName)
	if c.IsSet("nomad-skip-verify") {
		cfg.Nomad.SkipVerify = c.Bool("nomad-skip-verify")
	}
	if c.IsSet("consul-skip-verify") {
		cfg.Nomad.ConsulSkipVerify = c.Bool("consul-skip-verify")
	}
	// TLS settings that neither a flag nor the config file gives default
	// to the variables Nomad's and Consul's own CLIs read, so a server
	// started where `nomad` and `consul` work reaches the same agents.
	// (Unlike --nomad-addr's NOMAD_ADDR, they never override the file.)
	envDefault := func(dst *string, name string) {
		if *dst == "" {
			*dst = os.Getenv(name)
		}
	}
	envDefault(&cfg.Nomad.CACert, "NOMAD_CACERT")
	envDefault(&cfg.Nomad.ClientCert, "NOMAD_CLIENT_CERT")
	envDefault(&cfg.Nomad.ClientKey, "NOMAD_CLIENT_KEY")
	envDefault(&cfg.Nomad.TLSServerName, "NOMAD_TLS_SERVER_NAME")
	envDefault(&cfg.Nomad.ConsulCACert, "CONSUL_CACERT")
	envDefault(&cfg.Nomad.ConsulClientCert, "CONSUL_CLIENT_CERT")
	envDefault(&cfg.Nomad.ConsulClientKey, "CONSUL_CLIENT_KEY")
	envDefault(&cfg.Nomad.ConsulTLSServerName, "CONSUL_TLS_SERVER_NAME")
	switch strings.ToLower(os.Getenv("NOMAD_SKIP_VERIFY")) {
	case "1", "t", "true":
		cfg.Nomad.SkipVerify = cfg.Nomad.SkipVerify || !c.IsSet("nomad-skip-verify")
	}
	switch strings.ToLower(os.Getenv("CONSUL_HTTP_SSL_VERIFY")) {
	case "0", "f", "false":
		cfg.Nomad.ConsulSkipVerify = cfg.Nomad.ConsulSkipVerify || !c.IsSet("consul-skip-verify")
	}
	if c.IsSet("build-ca-file") {
		cfg.Build.CAFiles = c.StringSlice("build-ca-file")
	}
	if c.Bool("no-builds") {
		cfg.Build.Disabled = true
	}
	if c.IsSet("bootstrap-expect") {
		cfg.BootstrapExpect = c.Int("bootstrap-expect")
	}
	if c.IsSet("join") {
		cfg.Join = c.StringSlice("join")
	}
	if c.Bool("dev") {
		cfg.Dev = true
	}
	if cfg.Dev && cfg.AppsURL == "" && c.IsSet("router-http") {
		// Web URLs name the dev router's port.
		cfg.AppsURL = "http://" + portOf(c.String("router-http"))
	}
	if cfg.Dev && cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "berth-dev-")
		if err != nil {
			return err
		}
		cfg.DataDir = dir
	}
	if cfg.DataDir != "" {
		abs, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.DataDir = abs
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, log)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if err := srv.Start(c.Context); err != nil {
		return err
	}
	defer srv.Stop()
	eff := srv.Config()
	if eff.Dev {
		tok, fresh, err := srv.DevRootToken(c.Context)
		if err != nil {
			return err
		}
		w := c.App.Writer
		fmt.Fprintf(w, "berth dev server %s is ready\n", eff.Name)
		fmt.Fprintf(w, "  API:        http://%s\n", srv.APIAddr())
		fmt.Fprintf(w, "  data dir:   %s\n", eff.DataDir)
		if fresh {
			fmt.Fprintf(w, "  root token: %s\n", tok)
		}
		fmt.Fprintf(w, "  (the root token is in %s)\n\n", filepath.Join(eff.DataDir, "root-token"))
		fmt.Fprintf(w, "  export BERTH_ADDR=http://%s BERTH_TOKEN=$(cat %s)\n", srv.APIAddr(), filepath.Join(eff.DataDir, "root-token"))
	} else {
		log.Info("server started", "api", srv.APIAddr(), "raft", eff.RaftAdvertise, "bootstrap_expect", eff.BootstrapExpect, "join", eff.Join)
	}
	if stop, err := embeddedRouter(c, srv, log); err != nil {
		return err
	} else if stop != nil {
		defer stop()
	}
	select {
	case <-c.Context.Done():
		log.Info("shutting down")
		return nil
	case err := <-srv.Err():
		return err
	}
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToUpper(c.String("log-level")))); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Bool("log-json") {
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
}

// embeddedRouter starts the router that runs inside this server: always
// in --dev (on 127.0.0.1:8080 unless --router-http or --no-router say
// otherwise), elsewhere only with --router-http and --router-token.
func embeddedRouter(c *cli.Context, srv *server.Server, log *slog.Logger) (func(), error) {
	eff := srv.Config()
	addr := c.String("router-http")
	if c.Bool("no-router") || (addr == "" && !eff.Dev) {
		return nil, nil
	}
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	token := c.String("router-token")
	if token == "" && eff.Dev {
		tok, _, err := srv.DevRootToken(c.Context)
		if err != nil {
			return nil, err
		}
		token = tok
	}
	if token == "" {
		return nil, cli.Exit("--router-http needs --router-token (berth tokens create --role router NAME)", 2)
	}
	setup := routerSetup{Addrs: []string{srv.APIAddr()}, Token: token, HTTP: addr, Name: eff.Name,
		DataDir: filepath.Join(eff.DataDir, "router"), Logger: log, HTTPS: c.String("router-https")}
	if eff.Dev {
		// Dev certificates come from the cluster's internal CA.
		setup.InternalCA = true
		if setup.HTTPS == "" {
			setup.HTTPS = "127.0.0.1:8443"
		}
	}
	if eff.Runtime == "nomad" {
		cfg := consul.DefaultConfig()
		if eff.Nomad.ConsulAddr != "" {
			cfg.Address = eff.Nomad.ConsulAddr
		}
		cfg.Token = eff.Nomad.ConsulToken
		cl, err := consul.NewClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("router: consul: %w", err)
		}
		setup.Consul = cl
	}
	stop, err := startRouter(c.Context, setup)
	if err != nil && eff.Dev && !c.IsSet("router-http") && !c.IsSet("router-https") {
		// The default ports are taken: a dev server is still useful.
		log.Warn("no dev router: its default ports are taken; use --router-http and --router-https to move it", "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w (use --router-http to move the dev router, or --no-router)", err)
	}
	if eff.Dev {
		fmt.Fprintf(c.App.Writer, "  router:     http://%s and https://%s (apps answer on http://APP.%s%s/)\n", addr, setup.HTTPS, eff.AppsDomain, portOf(addr))
	}
	return stop, nil
}

// portOf returns ":PORT" of a listen address, or "" for port 80.
func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "80" {
		return ""
	}
	return ":" + port
}
