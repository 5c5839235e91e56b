package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/berthpaas/berth/buildpacks"
	"github.com/berthpaas/berth/cluster/build"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/gitreceive"
	"github.com/berthpaas/berth/cluster/registry"
	"github.com/berthpaas/berth/cluster/secrets"
	"github.com/berthpaas/berth/cluster/state"
	"github.com/berthpaas/berth/scheduler"
	dockerrt "github.com/berthpaas/berth/scheduler/docker"
	nomadrt "github.com/berthpaas/berth/scheduler/nomad"
	"github.com/docker/docker/client"
)

// dockerClient connects to the Docker engine (DOCKER_HOST or the local
// socket), or returns nil when none answers.
func (s *Server) dockerClient(ctx context.Context) (*client.Client, error) {
	if s.docker != nil {
		return s.docker, nil
	}
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = dc.Ping(pctx)
	if err == nil {
		// Negotiate once, before the builder and the runtime share the
		// client from several goroutines (the client does not lock it).
		dc.NegotiateAPIVersion(pctx)
	}
	cancel()
	if err != nil {
		dc.Close()
		s.log.Warn("no Docker engine: builds, the registry, git push and the docker runtime are off on this server", "err", err)
		return nil, nil
	}
	s.docker = dc
	return dc, nil
}

// startRuntime makes the runtime that runs releases on this server.
func (s *Server) startRuntime(ctx context.Context) (scheduler.Runtime, error) {
	switch s.cfg.Runtime {
	case "none":
		return nil, nil
	case "nomad":
		n := s.cfg.Nomad
		rt, err := nomadrt.New(nomadrt.Config{NomadAddr: n.Addr, NomadToken: n.Token, ConsulAddr: n.ConsulAddr, ConsulToken: n.ConsulToken,
			Datacenters: n.Datacenters, Region: n.Region, StopDrain: time.Duration(s.cfg.Drain), Logger: s.log.With("component", "runtime"),
			NomadTLS: nomadrt.TLS{CACert: n.CACert, ClientCert: n.ClientCert, ClientKey: n.ClientKey,
				ServerName: n.TLSServerName, InsecureSkipVerify: n.SkipVerify},
			ConsulTLS: nomadrt.TLS{CACert: n.ConsulCACert, ClientCert: n.ConsulClientCert, ClientKey: n.ConsulClientKey,
				ServerName: n.ConsulTLSServerName, InsecureSkipVerify: n.ConsulSkipVerify}})
		if err != nil {
			return nil, err
		}
		s.runtime = rt
		return rt, nil
	}
	dc, err := s.dockerClient(ctx)
	if err != nil || dc == nil {
		return nil, err
	}
	cluster := s.cfg.RuntimeCluster
	if cluster == "" {
		cluster = "berth"
	}
	rt, err := dockerrt.New(dockerrt.Config{Docker: dc, Cluster: cluster, Logger: s.log.With("component", "runtime")})
	if err != nil {
		return nil, err
	}
	s.runtime = rt
	return rt, nil
}

// startBuilds starts what git push needs on this server: the embedded
// registry and the build pipeline, on the Docker engine. Without a
// reachable engine the server runs without builds and says so.
func (s *Server) startBuilds(ctx context.Context) (*build.Pipeline, error) {
	bc := s.cfg.Build
	if bc.Disabled {
		return nil, nil
	}
	dc, err := s.dockerClient(ctx)
	if err != nil || dc == nil {
		return nil, err
	}
	var cas [][]byte
	for _, f := range bc.CAFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("build CA file: %w", err)
		}
		cas = append(cas, b)
	}
	proxy := map[string]string{}
	for k, v := range map[string]string{"HTTP_PROXY": bc.HTTPProxy, "HTTPS_PROXY": bc.HTTPSProxy, "NO_PROXY": bc.NoProxy} {
		if v != "" {
			proxy[k] = v
		}
	}
	reg, err := registry.New(registry.Config{Dir: filepath.Join(s.cfg.DataDir, "registry"), Addr: s.cfg.RegistryBind, Logger: s.log.With("component", "registry")})
	if err != nil {
		return nil, err
	}
	if err := reg.Start(ctx); err != nil {
		return nil, err
	}
	s.registry = reg
	work := filepath.Join(s.cfg.DataDir, "builds")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	return build.New(build.Config{
		Server: s.cfg.Name,
		Apply: func(ctx context.Context, cmd fsm.Command) (uint64, error) {
			return s.api.Apply(ctx, cmd)
		},
		WaitApplied: s.node.WaitForAppliedIndex,
		State:       func() *state.Store { return s.node.FSM().State() },
		Keyring:     func() *secrets.Keyring { return s.keyring.Load() },
		Builder:     buildpacks.NewBuilder(dc),
		Registry:    reg,
		Stack:       bc.Stack,
		CACerts:     cas,
		Proxy:       proxy,
		MaxSource:   bc.MaxPushBytes,
		Retain:      bc.RetainReleases,
		WorkDir:     work,
		Logger:      s.log.With("component", "build"),
		WaitDeploy:  s.runtime != nil,
	}), nil
}

// startGit serves git over SSH for pushes into pipeline.
func (s *Server) startGit(ctx context.Context, pipeline *build.Pipeline) error {
	g, err := gitreceive.New(gitreceive.Config{
		Bind: s.cfg.GitBind, HostKeyPath: filepath.Join(s.cfg.DataDir, "ssh_host_ed25519_key"),
		ReposDir: filepath.Join(s.cfg.DataDir, "repos"), MaxPushBytes: s.cfg.Build.MaxPushBytes,
		Auth: gitAuth{s}, Pipeline: pipeline, Logger: s.log.With("component", "git"),
	})
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	s.git = g
	return nil
}
