package main

import (
	"fmt"
	"io"
	"os"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:   "keys",
		Usage:  "SSH public keys that may git push with your token's rights",
		Action: keysList,
		Subcommands: []*cli.Command{
			{Name: "add", Usage: "add a public key from FILE or standard input (-)", ArgsUsage: "FILE|-",
				Flags: []cli.Flag{&cli.StringFlag{Name: "name", Usage: "key name (default: the key's comment)"}}, Action: keysAdd},
			{Name: "list", Usage: "list keys", Action: keysList},
			{Name: "remove", Usage: "remove a key", ArgsUsage: "NAME", Action: keysRemove},
		},
	}
}

func keysAdd(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: berth keys add [--name N] FILE|-", 2)
	}
	var b []byte
	var err error
	if f := c.Args().First(); f == "-" {
		b, err = io.ReadAll(io.LimitReader(c.App.Reader, 64<<10))
	} else {
		b, err = os.ReadFile(f)
	}
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	k, err := cl.AddKey(c.Context, api.KeyAddRequest{Name: c.String("name"), PublicKey: string(b)})
	if err != nil {
		return err
	}
	return emit(c, k, func(w io.Writer) { fmt.Fprintf(w, "Added key %s (%s)\n", k.Name, k.Fingerprint) })
}

func keysList(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	keys, _, err := cl.Keys(c.Context, nil)
	if err != nil {
		return err
	}
	return emit(c, keys, func(w io.Writer) {
		if len(keys) == 0 {
			fmt.Fprintln(w, "No keys. Add one with: berth keys add ~/.ssh/id_ed25519.pub")
			return
		}
		var rows [][]string
		for _, k := range keys {
			rows = append(rows, []string{k.Name, k.Fingerprint, k.Owner, ago(k.CreatedAt)})
		}
		table(w, []string{"NAME", "FINGERPRINT", "OWNER", "ADDED"}, rows)
	})
}

func keysRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: berth keys remove NAME", 2)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	if err := cl.RemoveKey(c.Context, name); err != nil {
		return err
	}
	return emit(c, map[string]string{"removed": name}, func(w io.Writer) { fmt.Fprintf(w, "Removed key %s\n", name) })
}
