package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:   "config",
		Usage:  "list, set, get and unset an app's config vars",
		Flags:  []cli.Flag{appFlag()},
		Action: configList,
		Subcommands: []*cli.Command{
			{Name: "set", Usage: "set config vars (atomically)", ArgsUsage: "KEY=VALUE...", Flags: []cli.Flag{appFlag()}, Action: configSet},
			{Name: "get", Usage: "print one value", ArgsUsage: "KEY", Flags: []cli.Flag{appFlag()}, Action: configGet},
			{Name: "unset", Usage: "remove config vars (atomically)", ArgsUsage: "KEY...", Flags: []cli.Flag{appFlag()}, Action: configUnset},
		},
	}
}

func configList(c *cli.Context) error {
	app, cl, err := appClient(c)
	if err != nil {
		return err
	}
	cfg, _, err := cl.Config(c.Context, app, nil)
	if err != nil {
		return err
	}
	return emit(c, cfg, func(w io.Writer) { printConfig(w, cfg) })
}

func printConfig(w io.Writer, cfg *api.Config) {
	if len(cfg.Keys) == 0 {
		fmt.Fprintf(w, "%s has no config vars\n", cfg.App)
		return
	}
	var rows [][]string
	for _, k := range cfg.Keys {
		v := "(hidden: this token cannot read values)"
		if !cfg.Redacted {
			v = cfg.Values[k]
		}
		rows = append(rows, []string{k + ":", v})
	}
	fmt.Fprintf(w, "=== %s config vars\n", cfg.App)
	table(w, []string{"KEY", "VALUE"}, rows)
}

func configSet(c *cli.Context) error {
	app, err := appName(c)
	if err != nil {
		return err
	}
	if c.NArg() == 0 {
		return cli.Exit("usage: berth config set -a APP KEY=VALUE...", 2)
	}
	set := map[string]string{}
	for _, kv := range c.Args().Slice() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return cli.Exit(fmt.Sprintf("%q is not KEY=VALUE", kv), 2)
		}
		if err := api.ValidateConfigKey(k); err != nil {
			return err
		}
		set[k] = v
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	cfg, err := cl.UpdateConfig(c.Context, app, api.ConfigUpdateRequest{Set: set})
	if err != nil {
		return err
	}
	return emit(c, cfg, func(w io.Writer) {
		fmt.Fprintf(w, "Set %d config var(s) on %s\n", len(set), app)
	})
}

func configGet(c *cli.Context) error {
	app, err := appName(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return cli.Exit("usage: berth config get -a APP KEY", 2)
	}
	key := c.Args().First()
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	cfg, _, err := cl.Config(c.Context, app, nil)
	if err != nil {
		return err
	}
	if cfg.Redacted {
		return cli.Exit("this token may not read config values of "+app, 1)
	}
	v, ok := cfg.Values[key]
	if !ok {
		return cli.Exit(fmt.Sprintf("%s has no config var %s", app, key), 1)
	}
	return emit(c, map[string]string{key: v}, func(w io.Writer) { fmt.Fprintln(w, v) })
}

func configUnset(c *cli.Context) error {
	app, err := appName(c)
	if err != nil {
		return err
	}
	if c.NArg() == 0 {
		return cli.Exit("usage: berth config unset -a APP KEY...", 2)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	cfg, err := cl.UpdateConfig(c.Context, app, api.ConfigUpdateRequest{Unset: c.Args().Slice()})
	if err != nil {
		return err
	}
	return emit(c, cfg, func(w io.Writer) { fmt.Fprintf(w, "Unset %s on %s\n", strings.Join(c.Args().Slice(), ", "), app) })
}
