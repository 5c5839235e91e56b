package main

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

// internalRootKey is where Caddy's internal CA keeps its root certificate
// in the routers' shared storage.
const internalRootKey = "pki/authorities/local/root.crt"

func routersCommand() *cli.Command {
	return &cli.Command{
		Name:   "routers",
		Usage:  "routers that follow this cluster, and what they serve",
		Action: routersList,
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list routers seen recently", Action: routersList},
			{Name: "ca-cert", Usage: "print the internal CA's root certificate (trust it to browse --dev apps over https)", Action: routersCACert},
		},
	}
}

func routersList(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	rs, _, err := cl.Routers(c.Context, nil)
	if err != nil {
		return err
	}
	tbl, _, err := cl.Routes(c.Context, nil)
	if err != nil {
		return err
	}
	return emit(c, rs, func(w io.Writer) {
		if len(rs) == 0 {
			fmt.Fprintln(w, "No router has reported (berth router --server ADDR --token ROUTER_TOKEN).")
			return
		}
		rows := make([][]string, 0, len(rs))
		for _, r := range rs {
			state := "current"
			switch {
			case time.Since(r.SeenAt) > api.RouterLiveWindow:
				state = "silent"
			case r.Applied < tbl.Index:
				state = "behind"
			}
			rows = append(rows, []string{r.Name, r.ID, strconv.FormatUint(r.Applied, 10), state,
				time.Since(r.SeenAt).Round(time.Second).String() + " ago"})
		}
		table(w, []string{"NAME", "ID", "SERVES INDEX", "STATE", "LAST REPORT"}, rows)
	})
}

func routersCACert(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	e, err := cl.CertGet(c.Context, internalRootKey)
	if api.IsCode(err, api.CodeNotFound) {
		return cli.Exit("no internal CA yet: it is created when a router first serves https with the internal CA (berth server --dev, or berth router --internal-ca)", 1)
	}
	if err != nil {
		return err
	}
	_, err = c.App.Writer.Write(e.Value)
	return err
}
