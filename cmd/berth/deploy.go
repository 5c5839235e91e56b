package main

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/urfave/cli/v2"
)

func deployCommand() *cli.Command {
	return &cli.Command{
		Name:      "deploy",
		Usage:     "deploy a directory (built like a git push) or an image of the server's Docker engine",
		ArgsUsage: "[DIR]",
		Flags: []cli.Flag{appFlag(),
			&cli.StringFlag{Name: "image", Usage: "release this image (e.g. myapp:latest) instead of building"},
			&cli.StringFlag{Name: "description", Usage: "release description (with --image)"},
		},
		Action: func(c *cli.Context) error {
			app, cl, err := appClient(c)
			if err != nil {
				return err
			}
			if img := c.String("image"); img != "" {
				if c.NArg() > 0 {
					return cli.Exit("give either --image or a DIR, not both", 2)
				}
				r, err := cl.DeployImage(c.Context, app, api.ImageDeployRequest{Image: img, Description: c.String("description")})
				if err != nil {
					return err
				}
				return emit(c, r, func(w io.Writer) { fmt.Fprintf(w, "Released %s as v%d (%s)\n", img, r.Version, r.Image) })
			}
			dir := "."
			if c.NArg() > 0 {
				dir = c.Args().First()
			}
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(tarDir(dir, pw)) }()
			v, err := cl.UploadBuild(c.Context, app, pr, c.App.ErrWriter)
			pr.Close()
			if err != nil {
				return err
			}
			return emit(c, map[string]any{"app": app, "version": v}, func(w io.Writer) { fmt.Fprintf(w, "Released %s v%d\n", app, v) })
		},
	}
}

// tarDir writes dir as a tar stream, like `git archive` would: regular
// files, directories and symlinks (as links, never followed); .git is left out.
func tarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		} else if !info.Mode().IsRegular() && !info.IsDir() {
			return nil // sockets, devices: not source
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() && !strings.HasSuffix(hdr.Name, "/") {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pack %s: %w", dir, err)
	}
	return tw.Close()
}
