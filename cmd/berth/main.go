// Command berth is both the berth daemon (server) and its CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/internal/version"
	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	if err := app.RunContext(ctx, reorderArgs(app, args)); err != nil {
		var exit cli.ExitCoder
		if errors.As(err, &exit) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(stderr, "error:", msg)
			}
			return exit.ExitCode()
		}
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			fmt.Fprintf(stderr, "error: %s\n", apiErr.Message)
			return 1
		}
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
	return 0
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "berth",
		Usage:     "a self-hosted PaaS: git push to deploy on your own VMs",
		Version:   version.Version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Usage: "berth server API address", EnvVars: []string{"BERTH_ADDR"}},
			&cli.StringFlag{Name: "token", Usage: "API token", EnvVars: []string{"BERTH_TOKEN"}},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of tables"},
		},
		Commands: []*cli.Command{
			serverCommand(),
			clusterCommand(),
			appsCommand(),
			configCommand(),
			tokensCommand(),
			auditCommand(),
			keysCommand(),
			releasesCommand(),
			rollbackCommand(),
			deployCommand(),
			buildsCommand(),
			gitCommand(),
			gitHookCommand(),
			scaleCommand(),
			psCommand(),
			logsCommand(),
			runCommand(),
			restartCommand(),
			deploysCommand(),
			checksCommand(),
			domainsCommand(),
			routerCommand(),
			routersCommand(),
			loginCommand(),
			logoutCommand(),
		},
		ExitErrHandler:  func(*cli.Context, error) {}, // run() prints errors
		HideHelpCommand: true,
	}
	addJSONFlag(app.Commands)
	return app
}
