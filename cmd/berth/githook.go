package main

import (
	"os"

	"github.com/berthpaas/berth/cluster/gitreceive"
	"github.com/urfave/cli/v2"
)

// gitHookCommand is what the pre-receive hook that berth installs in every
// app repository runs. It is not for people: git receive-pack, started by
// the berth git server, runs it with the pushed refs on stdin.
func gitHookCommand() *cli.Command {
	return &cli.Command{
		Name:   "git-hook",
		Usage:  "git hooks run by the berth git server (internal)",
		Hidden: true,
		Subcommands: []*cli.Command{{
			Name:  "pre-receive",
			Usage: "deploy a push to a deploy branch; a failed deploy rejects the push",
			Action: func(c *cli.Context) error {
				if code := gitreceive.RunHook(c.Context, c.App.Reader, c.App.ErrWriter, os.Environ()); code != 0 {
					// RunHook has already told the pusher why.
					return cli.Exit("", code)
				}
				return nil
			},
		}},
	}
}
