package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "save a server address and token in your config directory (0600)",
		Description: "Reads the token from --token, BERTH_TOKEN or standard input, checks it\n" +
			"against the server, and saves both for later commands.",
		Action: func(c *cli.Context) error {
			addr, token := c.String("addr"), c.String("token")
			if addr == "" {
				addr = api.DefaultAddr
			}
			if token == "" {
				fmt.Fprint(c.App.ErrWriter, "Token: ")
				line, err := bufio.NewReader(c.App.Reader).ReadString('\n')
				if err != nil && err != io.EOF {
					return fmt.Errorf("read token: %w", err)
				}
				token = strings.TrimSpace(line)
			}
			if token == "" {
				return cli.Exit("no token given", 2)
			}
			tok, err := api.NewClient(addr, token, nil).TokenSelf(c.Context)
			if err != nil {
				return err
			}
			path, err := saveSettings(settings{Addr: addr, Token: token})
			if err != nil {
				return err
			}
			return emit(c, tok, func(w io.Writer) {
				fmt.Fprintf(w, "Logged in to %s as %s (%s); saved to %s\n", addr, tok.Name, tok.Role, path)
			})
		},
	}
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:  "logout",
		Usage: "forget the saved server address and token",
		Action: func(c *cli.Context) error {
			path, err := settingsPath()
			if err != nil {
				return err
			}
			if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
				return err
			}
			return emit(c, map[string]bool{"logged_out": true}, func(w io.Writer) { fmt.Fprintln(w, "Logged out") })
		},
	}
}
