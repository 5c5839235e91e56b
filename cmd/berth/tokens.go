package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func tokensCommand() *cli.Command {
	return &cli.Command{
		Name:   "tokens",
		Usage:  "create, list and revoke API tokens",
		Action: tokensList,
		Subcommands: []*cli.Command{
			{Name: "create", Usage: "create a token; its secret is shown once", Flags: []cli.Flag{
				&cli.StringFlag{Name: "name", Required: true, Usage: "token name"},
				&cli.StringFlag{Name: "role", Required: true, Usage: "admin, deployer or viewer"},
				&cli.StringSliceFlag{Name: "app", Usage: "app the token may act on (repeatable; '*' for all)"},
			}, Action: tokensCreate},
			{Name: "list", Usage: "list tokens", Action: tokensList},
			{Name: "revoke", Usage: "revoke a token", ArgsUsage: "NAME|ACCESSOR", Action: tokensRevoke},
		},
	}
}

func tokensCreate(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	tok, err := cl.CreateToken(c.Context, api.TokenCreateRequest{Name: c.String("name"), Role: c.String("role"), Apps: c.StringSlice("app")})
	if err != nil {
		return err
	}
	return emit(c, tok, func(w io.Writer) {
		fmt.Fprintf(w, "Created %s token %s (accessor %s). Its secret is shown once:\n\n  %s\n", tok.Role, tok.Name, tok.AccessorID, tok.Secret)
	})
}

func tokensList(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	toks, _, err := cl.Tokens(c.Context, nil)
	if err != nil {
		return err
	}
	return emit(c, toks, func(w io.Writer) {
		var rows [][]string
		for _, t := range toks {
			apps := strings.Join(t.Apps, ",")
			if apps == "" {
				apps = "-"
			}
			rows = append(rows, []string{t.Name, t.AccessorID, t.Role, apps, t.CreatedBy, ago(t.CreatedAt)})
		}
		table(w, []string{"NAME", "ACCESSOR", "ROLE", "APPS", "CREATED BY", "CREATED"}, rows)
	})
}

func tokensRevoke(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: berth tokens revoke NAME|ACCESSOR", 2)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	id := c.Args().First()
	if err := cl.RevokeToken(c.Context, id); err != nil {
		return err
	}
	return emit(c, map[string]string{"revoked": id}, func(w io.Writer) { fmt.Fprintf(w, "Revoked token %s\n", id) })
}
