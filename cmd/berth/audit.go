package main

import (
	"fmt"
	"io"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "show who changed what, when and from where",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "app", Aliases: []string{"a"}, Usage: "only entries about this app"},
			&cli.IntFlag{Name: "num", Aliases: []string{"n"}, Value: 50, Usage: "how many entries"},
		},
		Action: func(c *cli.Context) error {
			app := c.String("app")
			if app != "" {
				if err := api.ValidateAppName(app); err != nil {
					return err
				}
			}
			cl, err := newClient(c)
			if err != nil {
				return err
			}
			entries, _, err := cl.Audit(c.Context, api.AuditQuery{App: app, Limit: c.Int("num")}, nil)
			if err != nil {
				return err
			}
			return emit(c, entries, func(w io.Writer) {
				var rows [][]string
				for _, e := range entries {
					app := e.App
					if app == "" {
						app = "-"
					}
					rows = append(rows, []string{e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, app, e.Detail, e.Remote})
				}
				if len(rows) == 0 {
					fmt.Fprintln(w, "No audit entries")
					return
				}
				table(w, []string{"TIME", "WHO", "ACTION", "APP", "DETAIL", "FROM"}, rows)
			})
		},
	}
}
