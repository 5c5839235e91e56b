package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

func buildsCommand() *cli.Command {
	return &cli.Command{
		Name:   "builds",
		Usage:  "list an app's builds",
		Flags:  []cli.Flag{appFlag()},
		Action: buildsList,
		Subcommands: []*cli.Command{
			{Name: "output", Usage: "print a build's output", ArgsUsage: "ID", Flags: []cli.Flag{appFlag()}, Action: buildsOutput},
		},
	}
}

func buildsList(c *cli.Context) error {
	app, cl, err := appClient(c)
	if err != nil {
		return err
	}
	builds, _, err := cl.Builds(c.Context, app, nil)
	if err != nil {
		return err
	}
	return emit(c, builds, func(w io.Writer) {
		var rows [][]string
		for _, b := range builds {
			rel := "-"
			if b.Release > 0 {
				rel = fmt.Sprintf("v%d", b.Release)
			}
			rows = append(rows, []string{b.ID, b.Status, b.Source, orDash(short7(b.Commit)), rel, b.CreatedBy, ago(b.StartedAt), orDash(b.Error)})
		}
		table(w, []string{"ID", "STATUS", "SOURCE", "COMMIT", "RELEASE", "BY", "STARTED", "ERROR"}, rows)
	})
}

func short7(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

func buildsOutput(c *cli.Context) error {
	app, err := appName(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return cli.Exit("usage: berth builds output -a APP ID", 2)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	b, err := cl.Build(c.Context, app, c.Args().First())
	if err != nil {
		return err
	}
	return emit(c, b, func(w io.Writer) {
		fmt.Fprint(w, b.Output)
		if b.Error != "" {
			fmt.Fprintf(w, "\nbuild %s failed: %s\n", b.ID, b.Error)
		}
	})
}
