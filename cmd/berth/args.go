package main

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs lets flags follow positional arguments (berth apps destroy web
// --confirm web), which urfave/cli v2 does not parse by itself: it moves the
// leaf command's flags, with their values, before its positional arguments,
// and global flags given after the command (berth login --addr X) to the
// front. Everything after "--" is left alone.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	flags := app.Flags
	cmds := app.Commands
	// Walk down the command path.
	for len(rest) > 0 {
		tok := rest[0]
		if tok == "--" {
			return append(out, rest...)
		}
		if strings.HasPrefix(tok, "-") && tok != "-" {
			n := flagTokens(flags, rest)
			out = append(out, rest[:n]...)
			rest = rest[n:]
			continue
		}
		cmd := findCommand(cmds, tok)
		if cmd == nil {
			break
		}
		out = append(out, tok)
		rest = rest[1:]
		flags, cmds = cmd.Flags, cmd.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	var globalArgs, flagArgs, positional []string
	for len(rest) > 0 {
		tok := rest[0]
		if tok == "--" {
			positional = append(positional, rest...)
			break
		}
		if strings.HasPrefix(tok, "-") && tok != "-" {
			if !hasFlag(flags, tok) && hasFlag(app.Flags, tok) {
				n := flagTokens(app.Flags, rest)
				globalArgs = append(globalArgs, rest[:n]...)
				rest = rest[n:]
				continue
			}
			n := flagTokens(flags, rest)
			flagArgs = append(flagArgs, rest[:n]...)
			rest = rest[n:]
			continue
		}
		positional = append(positional, tok)
		rest = rest[1:]
	}
	out = append(out[:1], append(globalArgs, out[1:]...)...)
	out = append(out, flagArgs...)
	if len(positional) > 0 && positional[0] != "--" && slices.ContainsFunc(positional, func(s string) bool { return strings.HasPrefix(s, "-") }) {
		out = append(out, "--")
	}
	return append(out, positional...)
}

// hasFlag reports whether tok (-x, --name or --name=v) names one of flags.
func hasFlag(flags []cli.Flag, tok string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// flagTokens returns how many tokens the flag at rest[0] takes (1 or 2).
func flagTokens(flags []cli.Flag, rest []string) int {
	name := strings.TrimLeft(rest[0], "-")
	if strings.Contains(name, "=") || len(rest) < 2 {
		return 1
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if _, isBool := f.(*cli.BoolFlag); isBool {
			return 1
		}
		return 2
	}
	return 1
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}
