package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthpaas/berth/cluster/server"
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
			&cli.StringFlag{Name: "runtime", Usage: "what runs releases: docker (default with a Docker engine), nomad or none"},
			&cli.StringFlag{Name: "nomad-addr", Usage: "Nomad API address (nomad runtime)", EnvVars: []string{"NOMAD_ADDR"}},
			&cli.StringFlag{Name: "nomad-token", Usage: "Nomad ACL token", EnvVars: []string{"NOMAD_TOKEN"}},
			&cli.StringFlag{Name: "consul-addr", Usage: "Consul HTTP address (nomad runtime)", EnvVars: []string{"CONSUL_HTTP_ADDR"}},
			&cli.StringFlag{Name: "consul-token", Usage: "Consul ACL token", EnvVars: []string{"CONSUL_HTTP_TOKEN"}},
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
	str("runtime", &cfg.Runtime)
	str("nomad-addr", &cfg.Nomad.Addr)
	str("nomad-token", &cfg.Nomad.Token)
	str("consul-addr", &cfg.Nomad.ConsulAddr)
	str("consul-token", &cfg.Nomad.ConsulToken)
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
