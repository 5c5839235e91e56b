package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func releasesCommand() *cli.Command {
	return &cli.Command{
		Name:   "releases",
		Usage:  "list an app's releases",
		Flags:  []cli.Flag{appFlag()},
		Action: releasesList,
		Subcommands: []*cli.Command{
			{Name: "info", Usage: "show one release", ArgsUsage: "vN", Flags: []cli.Flag{appFlag()}, Action: releasesInfo},
		},
	}
}

func releasesList(c *cli.Context) error {
	app, cl, err := appClient(c)
	if err != nil {
		return err
	}
	rels, _, err := cl.Releases(c.Context, app, nil)
	if err != nil {
		return err
	}
	return emit(c, rels, func(w io.Writer) {
		if len(rels) == 0 {
			fmt.Fprintf(w, "%s has no releases yet: git push berth main, or berth deploy -a %s\n", app, app)
			return
		}
		fmt.Fprintf(w, "=== %s releases\n", app)
		var rows [][]string
		for _, r := range rels {
			rows = append(rows, []string{fmt.Sprintf("v%d", r.Version), r.Description, "by " + r.CreatedBy, ago(r.CreatedAt)})
		}
		table(w, []string{"VERSION", "DESCRIPTION", "BY", "CREATED"}, rows)
	})
}

func releasesInfo(c *cli.Context) error {
	app, err := appName(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return cli.Exit("usage: berth releases info -a APP vN", 2)
	}
	v, err := api.ParseVersion(c.Args().First())
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	r, _, err := cl.Release(c.Context, app, v, nil)
	if err != nil {
		return err
	}
	return emit(c, r, func(w io.Writer) {
		fmt.Fprintf(w, "=== %s release v%d\n", app, r.Version)
		rows := [][]string{
			{"Description:", r.Description}, {"Kind:", r.Kind}, {"By:", r.CreatedBy},
			{"When:", r.CreatedAt.Local().Format("2006-01-02 15:04:05") + " (" + ago(r.CreatedAt) + ")"},
			{"Image:", r.Image}, {"Commit:", orDash(r.Commit)}, {"Config vars:", orDash(strings.Join(r.ConfigKeys, ", "))},
			{"Release command:", orDash(r.ReleaseCommand)},
		}
		names := make([]string, 0, len(r.Processes))
		for n := range r.Processes {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			rows = append(rows, []string{"Process " + n + ":", r.Processes[n]})
		}
		for _, row := range rows {
			fmt.Fprintf(w, "%-18s %s\n", row[0], row[1])
		}
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rollbackCommand() *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "release an earlier version's image and config again (default: the previous release)",
		ArgsUsage: "[vN]",
		Flags:     []cli.Flag{appFlag()},
		Action: func(c *cli.Context) error {
			app, err := appName(c)
			if err != nil {
				return err
			}
			var v uint64
			if c.NArg() > 0 {
				if v, err = api.ParseVersion(c.Args().First()); err != nil {
					return err
				}
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			r, err := cl.Rollback(c.Context, app, v)
			if err != nil {
				return err
			}
			return emit(c, r, func(w io.Writer) {
				fmt.Fprintf(w, "Rolled back %s: %s, released as v%d\n", app, r.Description, r.Version)
			})
		},
	}
}
