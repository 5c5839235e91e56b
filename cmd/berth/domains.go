package main

import (
	"fmt"
	"io"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func domainsCommand() *cli.Command {
	return &cli.Command{
		Name:  "domains",
		Usage: "custom domains of an app (it always answers on APP.<apps domain> too)",
		Description: `Point the domain's DNS at your routers (an A record, or a CNAME to
APP.<apps domain>), then add it; routers get its certificate on the first
HTTPS request. A domain belongs to one app; *.example.com covers one label.`,
		Flags:  []cli.Flag{appFlag()},
		Action: domainsList,
		Subcommands: []*cli.Command{
			{Name: "add", Usage: "add a custom domain", ArgsUsage: "DOMAIN", Flags: []cli.Flag{appFlag()}, Action: domainsAdd},
			{Name: "remove", Usage: "remove a custom domain", ArgsUsage: "DOMAIN", Flags: []cli.Flag{appFlag()}, Action: domainsRemove},
			{Name: "list", Usage: "list an app's domains", Flags: []cli.Flag{appFlag()}, Action: domainsList},
		},
	}
}

// domainArg returns the DOMAIN argument, normalised and checked.
func domainArg(c *cli.Context, usage string) (string, error) {
	if c.NArg() != 1 {
		return "", cli.Exit("usage: "+usage, 2)
	}
	return api.NormalizeDomain(c.Args().First())
}

func domainsAdd(c *cli.Context) error {
	d, err := domainArg(c, "berth domains add -a APP DOMAIN")
	if err != nil {
		return err
	}
	app, cl, err := appClient(c)
	if err != nil {
		return err
	}
	out, err := cl.AddDomain(c.Context, app, d)
	if err != nil {
		return err
	}
	return emit(c, out, func(w io.Writer) { fmt.Fprintf(w, "Added %s to %s\n", out.Name, app) })
}

func domainsRemove(c *cli.Context) error {
	d, err := domainArg(c, "berth domains remove -a APP DOMAIN")
	if err != nil {
		return err
	}
	app, cl, err := appClient(c)
	if err != nil {
		return err
	}
	if err := cl.RemoveDomain(c.Context, app, d); err != nil {
		return err
	}
	return emit(c, map[string]string{"removed": d, "app": app}, func(w io.Writer) { fmt.Fprintf(w, "Removed %s from %s\n", d, app) })
}

func domainsList(c *cli.Context) error {
	app, cl, err := appClient(c)
	if err != nil {
		return err
	}
	ds, _, err := cl.Domains(c.Context, app, nil)
	if err != nil {
		return err
	}
	info, _, err := cl.App(c.Context, app, nil)
	if err != nil {
		return err
	}
	return emit(c, ds, func(w io.Writer) {
		if info.WebURL != "" {
			fmt.Fprintf(w, "=== %s web URL\n%s\n\n", app, info.WebURL)
		}
		fmt.Fprintf(w, "=== %s custom domains\n", app)
		if len(ds) == 0 {
			fmt.Fprintln(w, "(none: berth domains add -a "+app+" www.example.com)")
			return
		}
		rows := make([][]string, 0, len(ds))
		for _, d := range ds {
			rows = append(rows, []string{d.Name, d.CreatedAt.Local().Format("2006-01-02 15:04")})
		}
		table(w, []string{"DOMAIN", "ADDED"}, rows)
	})
}
