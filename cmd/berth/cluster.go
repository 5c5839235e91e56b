package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "inspect and change the control plane",
		Subcommands: []*cli.Command{
			{Name: "bootstrap", Usage: "create the root token of a new cluster (once)", Action: clusterBootstrap},
			{Name: "status", Usage: "leader, term, indexes and each member's state", Action: clusterStatus},
			{Name: "members", Usage: "list the servers", Action: clusterMembers},
			{Name: "remove", Usage: "remove a dead or retired server", ArgsUsage: "NAME", Action: clusterRemove},
			{Name: "snapshot", Usage: "make the server at --addr take a raft snapshot now", Action: clusterSnapshot},
		},
	}
}

func clusterBootstrap(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	tok, err := cl.ClusterBootstrap(c.Context)
	if err != nil {
		return err
	}
	return emit(c, tok, func(w io.Writer) {
		fmt.Fprintf(w, "Root token (shown once, keep it safe):\n\n  %s\n\nexport BERTH_TOKEN=%s\n", tok.Secret, tok.Secret)
	})
}

func clusterStatus(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	st, err := cl.ClusterStatus(c.Context)
	if err != nil {
		return err
	}
	return emit(c, st, func(w io.Writer) {
		leader := st.Leader
		if leader == "" {
			leader = "(none: the cluster has no quorum)"
		}
		fmt.Fprintf(w, "Leader: %s\nTerm:   %d\n\n", leader, st.Term)
		memberTable(w, st.Members, true)
	})
}

func memberTable(w io.Writer, members []api.Member, detail bool) {
	var rows [][]string
	for _, m := range members {
		state := m.State
		if m.Error != "" {
			state += " (" + m.Error + ")"
		}
		row := []string{m.Name, m.RaftAddr, m.APIAddr, m.Suffrage, state}
		if detail {
			row = append(row, strconv.FormatUint(m.CommitIndex, 10), strconv.FormatUint(m.AppliedIdx, 10), m.LastContact)
		}
		rows = append(rows, row)
	}
	header := []string{"NAME", "RAFT", "API", "SUFFRAGE", "STATE"}
	if detail {
		header = append(header, "COMMIT", "APPLIED", "LAST CONTACT")
	}
	table(w, header, rows)
}

func clusterMembers(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	st, err := cl.ClusterStatus(c.Context)
	if err != nil {
		return err
	}
	return emit(c, st.Members, func(w io.Writer) { memberTable(w, st.Members, false) })
}

func clusterRemove(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: berth cluster remove NAME", 2)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	if err := cl.ClusterRemove(c.Context, name); err != nil {
		return err
	}
	return emit(c, map[string]string{"removed": name}, func(w io.Writer) { fmt.Fprintf(w, "Removed server %s\n", name) })
}

func clusterSnapshot(c *cli.Context) error {
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	if err := cl.ClusterSnapshot(c.Context); err != nil {
		return err
	}
	return emit(c, map[string]bool{"snapshot": true}, func(w io.Writer) { fmt.Fprintln(w, "Snapshot taken") })
}
