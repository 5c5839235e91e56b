// Command deploy measures deploys on the docker runtime through a real
// berth server: for a prebuilt image, the time from `berth deploy --image`
// to the first healthy new instance and to the deploy being done (health
// gated, cut over, old release drained and stopped), with the default
// checks; and the time to scale web from 0 to 10 healthy instances.
//
//	go run ./bench/deploy [-deploys 5]
//	go run ./bench/deploy -nomad-addr http://127.0.0.1:4646 -consul-addr 127.0.0.1:8500
//
// With -nomad-addr the server uses the nomad runtime against those agents
// (see scripts/README-nomad-consul.md for dev agents on one machine).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
)

// server is the tiny app every deployed image runs.
const server = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

func main() {
	deploys := flag.Int("deploys", 5, "number of deploys")
	nomadAddr := flag.String("nomad-addr", "", "use the nomad runtime with this Nomad API")
	consulAddr := flag.String("consul-addr", "127.0.0.1:8500", "Consul HTTP address (nomad runtime)")
	flag.Parse()
	if err := run(*deploys, *nomadAddr, *consulAddr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func sh(dir string, stdin []byte, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

// buildImages makes n images of the tiny server that differ only by a label.
func buildImages(dir string, n int) ([]string, error) {
	src := filepath.Join(dir, "app")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(server), 0o644)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module benchapp\n\ngo 1.22\n"), 0o644)
	if err := sh(src, nil, "go", "build", "-o", "app", "."); err != nil {
		return nil, err
	}
	var tags []string
	for i := range n {
		tag := fmt.Sprintf("berth-bench/deploy:%d", i)
		df := fmt.Sprintf("FROM scratch\nCOPY app /app\nLABEL n=%d\nENTRYPOINT [\"/app\"]\n", i)
		os.WriteFile(filepath.Join(src, "Dockerfile"), []byte(df), 0o644)
		if err := sh(src, nil, "docker", "build", "-q", "-t", tag, "."); err != nil {
			return nil, err
		}
		tags = append(tags, tag)
	}
	return tags, nil
}

func run(deploys int, nomadAddr, consulAddr string) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "berth-bench-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tags, err := buildImages(dir, deploys+1)
	if err != nil {
		return err
	}
	defer func() {
		for _, t := range tags {
			exec.Command("docker", "rmi", "-f", t).Run()
		}
	}()
	bin, err := harness.Build(ctx, dir)
	if err != nil {
		return err
	}
	opts := harness.Options{Builds: true, Runtime: "docker", Raft: map[string]any{}}
	if nomadAddr != "" {
		opts.Runtime, opts.Nomad = "nomad", map[string]any{"addr": nomadAddr, "consul_addr": consulAddr}
	}
	c, err := harness.New(bin, filepath.Join(dir, "cluster"), 1, opts)
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
	// The first deploy has nothing to replace; it warms the registry.
	if _, err := cl.DeployImage(ctx, "bench", api.ImageDeployRequest{Image: tags[0]}); err != nil {
		return err
	}
	fmt.Printf("berth deploys on the %s runtime: prebuilt image, default checks (HTTP GET / every 1 s), drain 2 s\n\n", opts.Runtime)
	fmt.Printf("%-7s %14s %14s %14s\n", "deploy", "first healthy", "cut over", "done")
	var firsts, cuts, dones []time.Duration
	for i := 1; i <= deploys; i++ {
		start := time.Now()
		firstCh := make(chan time.Duration, 1)
		pctx, cancel := context.WithCancel(ctx)
		go func() {
			for pctx.Err() == nil {
				insts, _ := cl.Instances(pctx, "bench")
				for _, in := range insts {
					if in.Release == uint64(i+1) && in.Healthy {
						firstCh <- time.Since(start)
						return
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		rel, err := cl.DeployImage(ctx, "bench", api.ImageDeployRequest{Image: tags[i]})
		done := time.Since(start)
		cancel()
		if err != nil {
			return err
		}
		var first time.Duration
		select {
		case first = <-firstCh:
		default:
		}
		deps, _, err := cl.Deploys(ctx, "bench", nil)
		if err != nil {
			return err
		}
		var cut time.Duration
		for _, d := range deps {
			if d.To == rel.Version {
				for _, s := range d.Steps {
					if s.State == "cutover" {
						cut = s.At.Sub(d.Steps[0].At)
					}
				}
			}
		}
		firsts, cuts, dones = append(firsts, first), append(cuts, cut), append(dones, done)
		fmt.Printf("v%-6d %14s %14s %14s\n", rel.Version, first.Round(time.Millisecond), cut.Round(time.Millisecond), done.Round(time.Millisecond))
	}
	med := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2].Round(time.Millisecond)
	}
	fmt.Printf("median  %14s %14s %14s   (cut over is measured from the deploy's start, after the image push)\n", med(firsts), med(cuts), med(dones))

	// Scale 0 → 10.
	if _, err := cl.Scale(ctx, "bench", api.ScaleRequest{Counts: map[string]int{"web": 0}}); err != nil {
		return err
	}
	for {
		insts, _ := cl.Instances(ctx, "bench")
		if len(insts) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	if _, err := cl.Scale(ctx, "bench", api.ScaleRequest{Counts: map[string]int{"web": 10}}); err != nil {
		return err
	}
	for {
		insts, _ := cl.Instances(ctx, "bench")
		n := 0
		for _, in := range insts {
			if in.Healthy {
				n++
			}
		}
		if n == 10 {
			break
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("scale to 10 did not finish in 5 minutes (%d healthy)", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("\nscale web 0 → 10 healthy: %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}
