package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func scaleCommand() *cli.Command {
	return &cli.Command{
		Name:      "scale",
		Usage:     "set how many instances of each process type run (web=3 worker=1; 0 stops a type)",
		ArgsUsage: "TYPE=COUNT...",
		Flags: []cli.Flag{appFlag(),
			&cli.IntFlag{Name: "memory", Usage: "memory limit in MB for the listed types"},
			&cli.IntFlag{Name: "cpu", Usage: "CPU in MHz for the listed types"},
		},
		Action: func(c *cli.Context) error {
			app, err := appName(c)
			if err != nil {
				return err
			}
			if c.NArg() == 0 {
				return cli.Exit("usage: berth scale -a APP web=2 worker=1", 2)
			}
			counts := map[string]int{}
			for _, a := range c.Args().Slice() {
				k, v, ok := strings.Cut(a, "=")
				n, err := strconv.Atoi(v)
				if !ok || err != nil || k == "" {
					return cli.Exit(fmt.Sprintf("%q is not TYPE=COUNT", a), 2)
				}
				counts[k] = n
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			f, err := cl.Scale(c.Context, app, api.ScaleRequest{Counts: counts, MemoryMB: c.Int("memory"), CPU: c.Int("cpu")})
			if err != nil {
				return err
			}
			return emit(c, f, func(w io.Writer) {
				var parts []string
				for k, v := range f.Counts {
					parts = append(parts, fmt.Sprintf("%s=%d", k, v))
				}
				slices.Sort(parts)
				fmt.Fprintf(w, "Scaled %s to %s\n", app, strings.Join(parts, " "))
			})
		},
	}
}

func psCommand() *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list an app's instances",
		Flags: []cli.Flag{appFlag()},
		Action: func(c *cli.Context) error {
			app, cl, err := appClient(c)
			if err != nil {
				return err
			}
			insts, err := cl.Instances(c.Context, app)
			if err != nil {
				return err
			}
			return emit(c, insts, func(w io.Writer) {
				if len(insts) == 0 {
					fmt.Fprintf(w, "%s has no instances\n", app)
					return
				}
				var rows [][]string
				for _, i := range insts {
					health := "-"
					switch {
					case i.Healthy:
						health = "healthy"
					case i.State == "running" || i.State == "pending":
						health = "checking"
					}
					if !i.Healthy && i.Message != "" {
						health += " (" + i.Message + ")"
					}
					rows = append(rows, []string{i.Name, fmt.Sprintf("v%d", i.Release), orDash(i.Node), i.State, health, ago(i.StartedAt)})
				}
				table(w, []string{"INSTANCE", "RELEASE", "NODE", "STATE", "HEALTH", "STARTED"}, rows)
			})
		},
	}
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:  "logs",
		Usage: "show an app's logs, all instances merged",
		Flags: []cli.Flag{appFlag(),
			&cli.BoolFlag{Name: "tail", Aliases: []string{"f"}, Usage: "keep following"},
			&cli.StringFlag{Name: "process", Aliases: []string{"p"}, Usage: "only this process type"},
			&cli.IntFlag{Name: "num", Aliases: []string{"n"}, Value: 100, Usage: "lines per instance"},
			&cli.DurationFlag{Name: "since", Usage: "only lines newer than this (e.g. 10m)"},
		},
		Action: func(c *cli.Context) error {
			app, cl, err := appClient(c)
			if err != nil {
				return err
			}
			return cl.Logs(c.Context, app, api.LogsQuery{Process: c.String("process"), Lines: c.Int("num"), Since: c.Duration("since"), Follow: c.Bool("tail")}, c.App.Writer)
		},
	}
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a one-off command with the app's image and config; returns its exit code",
		ArgsUsage: "-- CMD [ARGS...]",
		Flags:     []cli.Flag{appFlag(), &cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run in the background"}},
		Action: func(c *cli.Context) error {
			app, err := appName(c)
			if err != nil {
				return err
			}
			args := c.Args().Slice()
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if len(args) == 0 {
				return cli.Exit("usage: berth run -a APP -- CMD [ARGS...]", 2)
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			code, err := cl.Run(c.Context, app, args, c.Bool("detach"), c.App.Reader, c.App.Writer)
			if err != nil {
				return err
			}
			if code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

func restartCommand() *cli.Command {
	return &cli.Command{
		Name:  "restart",
		Usage: "replace an app's instances one at a time",
		Flags: []cli.Flag{appFlag(), &cli.StringFlag{Name: "process", Aliases: []string{"p"}, Usage: "only this process type"}},
		Action: func(c *cli.Context) error {
			app, cl, err := appClient(c)
			if err != nil {
				return err
			}
			if err := cl.Restart(c.Context, app, c.String("process")); err != nil {
				return err
			}
			return emit(c, map[string]string{"restarted": app}, func(w io.Writer) { fmt.Fprintf(w, "Restarted %s\n", app) })
		},
	}
}

func deploysCommand() *cli.Command {
	return &cli.Command{
		Name:  "deploys",
		Usage: "list an app's deploys with their state and failure reasons",
		Flags: []cli.Flag{appFlag()},
		Action: func(c *cli.Context) error {
			app, cl, err := appClient(c)
			if err != nil {
				return err
			}
			deps, _, err := cl.Deploys(c.Context, app, nil)
			if err != nil {
				return err
			}
			return emit(c, deps, func(w io.Writer) {
				var rows [][]string
				for _, d := range deps {
					from := "-"
					if d.From > 0 {
						from = fmt.Sprintf("v%d", d.From)
					}
					took := "-"
					if n := len(d.Steps); n > 1 {
						took = d.Steps[n-1].At.Sub(d.Steps[0].At).Round(10 * time.Millisecond).String()
					}
					started := time.Time{}
					if len(d.Steps) > 0 {
						started = d.Steps[0].At
					}
					rows = append(rows, []string{fmt.Sprintf("v%d", d.To), from, d.State, took, ago(started), orDash(d.Reason)})
				}
				table(w, []string{"RELEASE", "FROM", "STATE", "TOOK", "STARTED", "REASON"}, rows)
			})
		},
	}
}

func checksCommand() *cli.Command {
	return &cli.Command{
		Name:  "checks",
		Usage: "health checks of process types",
		Subcommands: []*cli.Command{{
			Name:      "set",
			Usage:     "set a process type's health check (run from outside the container)",
			ArgsUsage: "PROCESS",
			Flags: []cli.Flag{appFlag(),
				&cli.StringFlag{Name: "type", Value: "http", Usage: "http, tcp or none"},
				&cli.StringFlag{Name: "path", Usage: "HTTP path (default /)"},
				&cli.StringFlag{Name: "interval", Usage: "between checks (default 1s)"},
				&cli.StringFlag{Name: "timeout", Usage: "of one check (default 2s)"},
			},
			Action: func(c *cli.Context) error {
				app, err := appName(c)
				if err != nil {
					return err
				}
				if c.NArg() != 1 {
					return cli.Exit("usage: berth checks set -a APP PROCESS [--type http --path /healthz --timeout 5s]", 2)
				}
				cl, err := newClient(c)
				if err != nil {
					return err
				}
				p := c.Args().First()
				req := api.CheckRequest{Type: c.String("type"), Path: c.String("path"), Interval: c.String("interval"), Timeout: c.String("timeout")}
				if err := cl.SetCheck(c.Context, app, p, req); err != nil {
					return err
				}
				return emit(c, req, func(w io.Writer) { fmt.Fprintf(w, "Set the %s check of %s.%s\n", req.Type, app, p) })
			},
		}},
	}
}
