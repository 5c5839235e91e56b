// Command push measures berth's own overhead on a git push: for a small
// Dockerfile app it pushes several commits to a real server (real git over
// real SSH, a real Docker engine, the embedded registry) and prints, per
// push, the wall time seen by `git push`, the Docker build itself, and
// everything else berth does (receiving the source, pushing to the
// registry, recording the release), which is the overhead.
//
//	go run ./bench/push [-pushes 5] [-stack berth/test-stack:bookworm]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
)

func main() {
	pushes := flag.Int("pushes", 5, "number of pushes")
	stack := flag.String("stack", "berth/test-stack:bookworm", "base image of the app's Dockerfile")
	flag.Parse()
	if err := run(*pushes, *stack); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func git(dir string, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %v: %v\n%s", args, err, out)
	}
	return string(out), nil
}

func run(pushes int, stack string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "berth-bench-push-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := harness.Build(ctx, dir)
	if err != nil {
		return err
	}
	c, err := harness.New(bin, filepath.Join(dir, "cluster"), 1, harness.Options{Builds: true, Stack: stack, Raft: map[string]any{}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		return err
	}
	cl := c.Client(0)
	if _, err := cl.CreateApp(ctx, "bench"); err != nil {
		return err
	}
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	if _, err := cl.AddKey(ctx, api.KeyAddRequest{Name: "bench", PublicKey: string(pub)}); err != nil {
		return err
	}
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(repo, 0o755)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@x", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@x",
		"GIT_SSH_COMMAND=ssh -i " + key + " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR"}
	// A small Dockerfile app: one cheap layer that changes with every push.
	if _, err := git(repo, env, "init", "-q", "-b", "main"); err != nil {
		return err
	}
	if _, err := git(repo, env, "remote", "add", "berth", "ssh://git@"+c.Servers[0].GitAddr+"/bench.git"); err != nil {
		return err
	}
	fmt.Printf("berth git push overhead: small Dockerfile app, %d pushes\n\n", pushes)
	fmt.Printf("%-5s %10s %10s %10s   %s\n", "push", "git push", "build", "overhead", "overhead by step")
	var overheads []time.Duration
	for i := 1; i <= pushes; i++ {
		df := fmt.Sprintf("FROM %s\nCOPY version /version\nCMD [\"cat\", \"/version\"]\n", stack)
		os.WriteFile(filepath.Join(repo, "Dockerfile"), []byte(df), 0o644)
		os.WriteFile(filepath.Join(repo, "version"), []byte(fmt.Sprint(i, time.Now().UnixNano())), 0o644)
		if _, err := git(repo, env, "add", "-A"); err != nil {
			return err
		}
		if _, err := git(repo, env, "commit", "-q", "-m", fmt.Sprint("push ", i)); err != nil {
			return err
		}
		start := time.Now()
		if out, err := git(repo, env, "push", "-q", "berth", "main"); err != nil {
			return fmt.Errorf("push %d: %w\n%s", i, err, out)
		}
		wall := time.Since(start)
		builds, _, err := cl.Builds(ctx, "bench", nil)
		if err != nil || len(builds) == 0 {
			return fmt.Errorf("builds: %v", err)
		}
		b, err := cl.Build(ctx, "bench", builds[0].ID)
		if err != nil {
			return err
		}
		var steps []string
		var over time.Duration
		names := make([]string, 0, len(b.PhaseSeconds))
		for k := range b.PhaseSeconds {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			d := time.Duration(b.PhaseSeconds[k] * float64(time.Second))
			if k != "build" {
				over += d
				steps = append(steps, fmt.Sprintf("%s %s", k, d.Round(time.Millisecond)))
			}
		}
		build := time.Duration(b.PhaseSeconds["build"] * float64(time.Second))
		overheads = append(overheads, over)
		fmt.Printf("%-5d %10s %10s %10s   %s\n", i, wall.Round(time.Millisecond), build.Round(time.Millisecond), over.Round(time.Millisecond), strings.Join(steps, ", "))
	}
	slices.Sort(overheads)
	fmt.Printf("\noverhead (end of upload → release recorded, minus docker build): median %s, max %s\n",
		overheads[len(overheads)/2].Round(time.Millisecond), overheads[len(overheads)-1].Round(time.Millisecond))
	return nil
}
