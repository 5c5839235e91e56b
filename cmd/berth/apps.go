package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func appsCommand() *cli.Command {
	return &cli.Command{
		Name:   "apps",
		Usage:  "create, list, inspect and destroy apps",
		Action: appsList,
		Subcommands: []*cli.Command{
			{Name: "create", Usage: "create an app", ArgsUsage: "NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "deploy-branch", Usage: "branch whose pushes deploy (default: main or master)"}}, Action: appsCreate},
			{Name: "update", Usage: "change an app's settings", ArgsUsage: "[NAME]",
				Flags: []cli.Flag{appFlag(), &cli.StringFlag{Name: "deploy-branch", Usage: "branch whose pushes deploy (\"\" for main or master)"},
					&cli.StringFlag{Name: "deploy-timeout", Usage: "how long new instances have to become healthy (e.g. 90s; \"\" for 60s)"},
					&cli.BoolFlag{Name: "force-https", Usage: "redirect plain-HTTP requests to https (--force-https=false to stop)"},
					&cli.BoolFlag{Name: "hsts", Usage: "send Strict-Transport-Security on https answers (--hsts=false to stop)"},
					&cli.StringFlag{Name: "lb", Usage: "routers' load balancing: round_robin (default) or least_conn"}}, Action: appsUpdate},
			{Name: "list", Usage: "list apps", Action: appsList},
			{Name: "info", Usage: "show an app", ArgsUsage: "[NAME]", Flags: []cli.Flag{appFlag()}, Action: appsInfo},
			{Name: "destroy", Usage: "destroy an app and its config", ArgsUsage: "NAME --confirm NAME",
				Flags: []cli.Flag{&cli.StringFlag{Name: "confirm", Usage: "the app's name again"}}, Action: appsDestroy},
		},
	}
}

// nameArg returns the single NAME argument, validated.
func nameArg(c *cli.Context, usage string) (string, error) {
	if c.NArg() != 1 {
		return "", cli.Exit("usage: "+usage, 2)
	}
	name := c.Args().First()
	return name, api.ValidateAppName(name)
}

func appsCreate(c *cli.Context) error {
	name, err := nameArg(c, "berth apps create NAME")
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	app, err := cl.CreateAppWith(c.Context, api.AppCreateRequest{Name: name, DeployBranch: c.String("deploy-branch")})
	if err != nil {
		return err
	}
	return emit(c, app, func(w io.Writer) {
		fmt.Fprintf(w, "Created app %s\n", app.Name)
		if app.GitRemote != "" {
			fmt.Fprintf(w, "Git remote: %s\n  git remote add berth %s && git push berth main\n", app.GitRemote, app.GitRemote)
		}
	})
}

func appsList(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	apps, _, err := cl.Apps(c.Context, nil)
	if err != nil {
		return err
	}
	return emit(c, apps, func(w io.Writer) {
		if len(apps) == 0 {
			fmt.Fprintln(w, "No apps yet. Create one with: berth apps create NAME")
			return
		}
		var rows [][]string
		for _, a := range apps {
			rows = append(rows, []string{a.Name, ago(a.CreatedAt)})
		}
		table(w, []string{"NAME", "CREATED"}, rows)
	})
}

func appsInfo(c *cli.Context) error {
	var name string
	var err error
	if c.NArg() > 0 {
		name, err = nameArg(c, "berth apps info NAME")
	} else {
		name, err = appName(c)
	}
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	app, _, err := cl.App(c.Context, name, nil)
	if err != nil {
		return err
	}
	cfg, _, err := cl.Config(c.Context, name, nil)
	if err != nil {
		return err
	}
	return emit(c, app, func(w io.Writer) {
		branch := app.DeployBranch
		if branch == "" {
			branch = "main, master"
		}
		release := "-"
		if app.LatestRelease > 0 {
			release = fmt.Sprintf("v%d", app.LatestRelease)
		}
		fmt.Fprintf(w, "=== %s\n", app.Name)
		for _, row := range [][2]string{{"Created:", app.CreatedAt.Local().Format("2006-01-02 15:04:05")}, {"Release:", release},
			{"Config vars:", strconv.Itoa(len(cfg.Keys))}, {"Deploy branch:", branch}, {"Git remote:", orDash(app.GitRemote)},
			{"Web URL:", orDash(app.WebURL)}, {"HTTPS:", httpsMode(app)}, {"Balancing:", orDash(app.LB)}} {
			fmt.Fprintf(w, "%-15s %s\n", row[0], row[1])
		}
	})
}

func appsDestroy(c *cli.Context) error {
	name, err := nameArg(c, "berth apps destroy NAME --confirm NAME")
	if err != nil {
		return err
	}
	if c.String("confirm") != name {
		return cli.Exit(fmt.Sprintf("destroying %s deletes it and its config for good; run again with --confirm %s", name, name), 2)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	if err := cl.DestroyApp(c.Context, name); err != nil {
		return err
	}
	return emit(c, map[string]string{"destroyed": name}, func(w io.Writer) { fmt.Fprintf(w, "Destroyed app %s\n", name) })
}

func appsUpdate(c *cli.Context) error {
	var name string
	var err error
	if c.NArg() > 0 {
		name, err = nameArg(c, "berth apps update [NAME] --deploy-branch BRANCH")
	} else {
		name, err = appName(c)
	}
	if err != nil {
		return err
	}
	var req api.AppUpdateRequest
	if c.IsSet("deploy-branch") {
		v := c.String("deploy-branch")
		req.DeployBranch = &v
	}
	if c.IsSet("deploy-timeout") {
		v := c.String("deploy-timeout")
		req.DeployTimeout = &v
	}
	if c.IsSet("force-https") {
		v := c.Bool("force-https")
		req.ForceHTTPS = &v
	}
	if c.IsSet("hsts") {
		v := c.Bool("hsts")
		req.HSTS = &v
	}
	if c.IsSet("lb") {
		v := c.String("lb")
		req.LB = &v
	}
	if req.DeployBranch == nil && req.DeployTimeout == nil && req.ForceHTTPS == nil && req.HSTS == nil && req.LB == nil {
		return cli.Exit("nothing to change: give --deploy-branch, --deploy-timeout, --force-https, --hsts or --lb", 2)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	app, err := cl.UpdateApp(c.Context, name, req)
	if err != nil {
		return err
	}
	return emit(c, app, func(w io.Writer) { fmt.Fprintf(w, "Updated %s\n", app.Name) })
}

// httpsMode describes an app's HTTPS settings.
func httpsMode(app *api.App) string {
	switch {
	case app.ForceHTTPS && app.HSTS:
		return "forced, HSTS"
	case app.ForceHTTPS:
		return "forced"
	case app.HSTS:
		return "optional, HSTS"
	}
	return "optional"
}
