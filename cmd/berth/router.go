package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/router"
	consul "github.com/hashicorp/consul/api"
	"github.com/urfave/cli/v2"
)

func routerCommand() *cli.Command {
	return &cli.Command{
		Name:  "router",
		Usage: "serve the apps' HTTP traffic (a Caddy-based router fed by the control plane)",
		Description: `Run one router per edge host (or several behind DNS or a load balancer):

   berth tokens create --role router edge1     # once, on a workstation
   berth router --server 10.0.0.1:4880 --token $ROUTER_TOKEN --http :80

Routes come from the control plane (blocking queries: a change arrives at
once); upstreams of apps on the nomad runtime come from Consul (--consul-addr,
passing checks only). The last route table is kept in --data-dir, so the
router keeps serving, and starts, while the control plane is down.
'berth server --dev' runs a router of its own on 127.0.0.1:8080.`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "server", Usage: "a berth server's API address; repeat for every server, so the router follows the cluster while any is up (default: --addr, BERTH_ADDR)"},
			&cli.StringFlag{Name: "http", Value: ":80", Usage: "plain-HTTP listen address"},
			&cli.StringFlag{Name: "https", Usage: "HTTPS listen address, e.g. :443 (default: none); certificates on demand for registered domains"},
			&cli.StringFlag{Name: "acme-ca", Usage: "ACME directory URL (default Let's Encrypt)"},
			&cli.StringFlag{Name: "acme-email", Usage: "ACME account contact address"},
			&cli.StringSliceFlag{Name: "acme-ca-root", Usage: "PEM file of a CA trusted for the ACME server's HTTPS (repeatable; private ACME CAs)"},
			&cli.BoolFlag{Name: "internal-ca", Usage: "issue every certificate from the cluster's internal CA (no ACME)"},
			&cli.StringFlag{Name: "name", Usage: "this router's name in reports (default: hostname)"},
			&cli.StringFlag{Name: "data-dir", Value: "/var/lib/berth/router", Usage: "where the last route table is kept"},
			&cli.StringFlag{Name: "consul-addr", Usage: "Consul HTTP address, for apps of the nomad runtime", EnvVars: []string{"CONSUL_HTTP_ADDR"}},
			&cli.StringFlag{Name: "consul-token", Usage: "Consul ACL token", EnvVars: []string{"CONSUL_HTTP_TOKEN"}},
			&cli.StringFlag{Name: "access-log", Usage: "file for JSON access logs, one line per request (\"-\" for standard output)"},
			&cli.StringFlag{Name: "metrics-bind", Usage: "address serving Prometheus metrics at /metrics (default: none)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.BoolFlag{Name: "log-json", Usage: "log in JSON"},
		},
		Action: runRouterCommand,
	}
}

// routerSetup is what a router needs, from `berth router` or from the
// router inside `berth server --dev`.
type routerSetup struct {
	Addrs       []string // control-plane servers
	Token       string
	HTTP        string
	Name        string
	DataDir     string
	Consul      *consul.Client
	AccessLog   io.Writer
	MetricsBind string
	Logger      *slog.Logger
	// HTTPS, when set, serves TLS there with certificates kept in the
	// control plane (shared by every router).
	HTTPS       string
	ACMECA      string
	ACMEEmail   string
	ACMECARoots []string
	InternalCA  bool
}

func runRouterCommand(c *cli.Context) error {
	router.TuneRuntime() // a process that is mostly the router: a lazier GC (unless GOGC is set)
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	addrs := c.StringSlice("server")
	if len(addrs) == 0 && c.String("addr") != "" {
		addrs = []string{c.String("addr")}
	}
	token := c.String("token")
	if len(addrs) == 0 || token == "" {
		s, err := loadSettings()
		if err != nil {
			return err
		}
		if len(addrs) == 0 {
			addrs = []string{cmp.Or(s.Addr, api.DefaultAddr)}
		}
		token = cmp.Or(token, s.Token)
	}
	if token == "" {
		return cli.Exit("no token: pass --token (a router token: berth tokens create --role router NAME)", 2)
	}
	setup := routerSetup{Addrs: addrs, Token: token, HTTP: c.String("http"), Name: c.String("name"),
		DataDir: c.String("data-dir"), MetricsBind: c.String("metrics-bind"), Logger: log,
		HTTPS: c.String("https"), ACMECA: c.String("acme-ca"), ACMEEmail: c.String("acme-email"),
		ACMECARoots: c.StringSlice("acme-ca-root"), InternalCA: c.Bool("internal-ca")}
	if a := c.String("consul-addr"); a != "" {
		cfg := consul.DefaultConfig()
		cfg.Address, cfg.Token = a, c.String("consul-token")
		if setup.Consul, err = consul.NewClient(cfg); err != nil {
			return fmt.Errorf("--consul-addr: %w", err)
		}
	}
	switch p := c.String("access-log"); p {
	case "":
	case "-":
		setup.AccessLog = c.App.Writer
	default:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("--access-log: %w", err)
		}
		defer f.Close()
		setup.AccessLog = f
	}
	stop, err := startRouter(c.Context, setup)
	if err != nil {
		return err
	}
	defer stop()
	<-c.Context.Done()
	log.Info("router shutting down")
	return nil
}

// startRouter starts a router fed by the control plane and returns its stop
// function.
func startRouter(ctx context.Context, s routerSetup) (stop func(), err error) {
	if s.Name == "" {
		if s.Name, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("no --name and no hostname: %w", err)
		}
	}
	if err := os.MkdirAll(s.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("router data dir: %w", err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	// No client timeout: blocking queries last minutes; requests carry
	// the watch's context.
	hc := &http.Client{}
	var clients []*api.Client
	for _, a := range s.Addrs {
		clients = append(clients, api.NewClient(a, s.Token, hc))
	}
	servers := router.NewServers(clients...)
	src := &router.ControlPlaneSource{
		Servers: servers,
		Consul:  s.Consul,
		ID:      s.Name + "-" + hex.EncodeToString(suffix),
		Name:    s.Name,
		Logger:  s.Logger.With("component", "router-source"),
	}
	// Access logs go to the control plane (berth logs, process "router")
	// and, if asked, to a file too.
	ship := &router.LogShipper{Servers: servers, Router: src.ID, Logger: s.Logger.With("component", "router-logs")}
	var access io.Writer = ship
	if s.AccessLog != nil {
		access = io.MultiWriter(ship, s.AccessLog)
	}
	opts := router.Options{
		HTTPAddr:  s.HTTP,
		Source:    src,
		StateFile: filepath.Join(s.DataDir, "routes.json"),
		Logger:    s.Logger.With("component", "router"),
		AccessLog: access,
	}
	if s.HTTPS != "" {
		opts.HTTPSAddr, opts.ACMECA, opts.ACMEEmail = s.HTTPS, s.ACMECA, s.ACMEEmail
		opts.ACMETrustedRootsFiles, opts.InternalCA = s.ACMECARoots, s.InternalCA
		opts.CertStorage = &router.ControlPlaneStorage{Servers: servers, Owner: src.ID}
	}
	r, err := router.New(opts)
	if err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	var metrics *http.Server
	if s.MetricsBind != "" {
		ln, err := net.Listen("tcp", s.MetricsBind)
		if err != nil {
			_ = r.Stop(context.Background())
			return nil, fmt.Errorf("--metrics-bind: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", r.MetricsHandler())
		metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Logger.Warn("router metrics", "err", err)
			}
		}()
	}
	shipCtx, stopShip := context.WithCancel(context.WithoutCancel(ctx))
	shipDone := make(chan struct{})
	go func() {
		defer close(shipDone)
		ship.Run(shipCtx)
	}()
	s.Logger.Info("router started", "http", r.Addr(), "https", r.HTTPSAddr(), "servers", s.Addrs, "id", src.ID)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if metrics != nil {
			_ = metrics.Shutdown(ctx)
		}
		if err := r.Stop(ctx); err != nil {
			s.Logger.Warn("router stop", "err", err)
		}
		stopShip()
		<-shipDone
	}, nil
}
