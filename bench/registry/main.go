// Command registry measures, side by side in one run, `docker push` and
// `docker pull` of a ~100 MB image to (a) berth's embedded registry
// (cluster/registry) and (b) a plain distribution registry started from the
// same module version with its stock example configuration, both in this
// process on loopback, both on the local filesystem.
//
//	go run ./bench/registry [-runs 5] [-mb 100] [-layers 4]
//
// Every run builds a new image of random data (so nothing compresses and no
// blob is already present or mountable), pushes it to a fresh repository on
// each registry, then removes it from the engine before each pull so pulls
// are real. The order of the two registries alternates between runs. Times
// include the docker CLI and, for pulls, the engine's layer extraction, which
// are the same for both.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/berthpaas/berth/cluster/registry"
	"github.com/berthpaas/berth/internal/ports"
	"github.com/distribution/distribution/v3/configuration"
	distregistry "github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"
)

func main() {
	runs := flag.Int("runs", 5, "push/pull rounds per registry")
	mb := flag.Int("mb", 100, "image size in MB (random data)")
	layers := flag.Int("layers", 4, "number of layers the data is split into")
	flag.Parse()
	if err := run(*runs, *mb, *layers); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// target is one registry under test.
type target struct {
	name string
	addr string
}

type sample struct{ push, pull time.Duration }

func run(runs, mb, layers int) error {
	ctx := context.Background()
	if runs < 1 || mb < 1 || layers < 1 {
		return errors.New("-runs, -mb and -layers must be positive")
	}
	dir, err := os.MkdirTemp("", "berth-bench-registry-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	berth, err := registry.New(registry.Config{Dir: filepath.Join(dir, "berth"), Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	if err := berth.Start(ctx); err != nil {
		return err
	}
	defer berth.Stop(context.Background())

	plainAddr, stopPlain, err := startPlain(ctx, filepath.Join(dir, "plain"))
	if err != nil {
		return err
	}
	defer stopPlain()

	targets := []target{{"berth", berth.Addr()}, {"plain", plainAddr}}
	for _, t := range targets {
		if err := waitUp(ctx, t.addr); err != nil {
			return fmt.Errorf("%s registry: %w", t.name, err)
		}
	}
	engine, _ := docker(ctx, "version", "-f", "{{.Server.Version}}")
	fmt.Printf("registry bench: %d MB image in %d layers of random data, %d runs, docker engine %s\n",
		mb, layers, runs, strings.TrimSpace(engine))
	fmt.Printf("berth: cluster/registry at %s; plain: distribution registry.NewRegistry (config-example.yml settings, inmemory blob cache) at %s\n\n",
		targets[0].addr, targets[1].addr)

	var built []string
	defer func() { // after a failure, images may be left behind
		if len(built) > 0 {
			docker(context.Background(), append([]string{"rmi", "-f"}, built...)...)
		}
	}()
	samples := map[string][]sample{}
	var size int64
	tag := fmt.Sprintf("berth-bench-registry-%d", time.Now().UnixNano())
	for i := range runs {
		local := fmt.Sprintf("%s:%d", tag, i)
		id, err := buildImage(ctx, filepath.Join(dir, fmt.Sprint("ctx", i)), local, mb, layers)
		if err != nil {
			return err
		}
		built = append(built, id)
		order := slices.Clone(targets)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		digests := map[string]string{}
		for _, t := range order {
			ref := fmt.Sprintf("%s/bench/run%d-%s:v1", t.addr, i, t.name)
			if _, err := docker(ctx, "tag", local, ref); err != nil {
				return err
			}
			start := time.Now()
			out, err := docker(ctx, "push", ref)
			if err != nil {
				return err
			}
			d := time.Since(start)
			m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
			if m == nil {
				return fmt.Errorf("no digest in docker push output: %s", out)
			}
			digests[t.name] = m[1]
			samples[t.name] = append(samples[t.name], sample{push: d})
			if size == 0 {
				if size, err = imageBytes(ctx, t.addr, fmt.Sprintf("bench/run%d-%s", i, t.name), m[1]); err != nil {
					return err
				}
			}
		}
		if _, err := docker(ctx, "rmi", "-f", id); err != nil {
			return err
		}
		for _, t := range order {
			ref := fmt.Sprintf("%s/bench/run%d-%s@%s", t.addr, i, t.name, digests[t.name])
			start := time.Now()
			if _, err := docker(ctx, "pull", ref); err != nil {
				return err
			}
			d := time.Since(start)
			s := samples[t.name]
			s[len(s)-1].pull = d
			if _, err := docker(ctx, "rmi", "-f", id); err != nil {
				return err
			}
		}
		os.RemoveAll(filepath.Join(dir, fmt.Sprint("ctx", i)))
	}

	mbytes := float64(size) / 1e6
	fmt.Printf("bytes transferred per push/pull: %.1f MB (sum of blob sizes in the manifest)\n\n", mbytes)
	fmt.Printf("%-8s %-6s %9s %10s %9s %10s\n", "registry", "run", "push s", "push MB/s", "pull s", "pull MB/s")
	med := map[string]sample{}
	for _, t := range targets {
		for i, s := range samples[t.name] {
			fmt.Printf("%-8s %-6d %9.2f %10.1f %9.2f %10.1f\n", t.name, i+1,
				s.push.Seconds(), mbytes/s.push.Seconds(), s.pull.Seconds(), mbytes/s.pull.Seconds())
		}
		m := sample{push: median(samples[t.name], func(s sample) time.Duration { return s.push }),
			pull: median(samples[t.name], func(s sample) time.Duration { return s.pull })}
		med[t.name] = m
		fmt.Printf("%-8s %-6s %9.2f %10.1f %9.2f %10.1f\n", t.name, "median",
			m.push.Seconds(), mbytes/m.push.Seconds(), m.pull.Seconds(), mbytes/m.pull.Seconds())
	}
	b, p := med["berth"], med["plain"]
	fmt.Printf("\nratio berth/plain (median throughput, >1 = berth faster): push %.2f  pull %.2f\n",
		p.push.Seconds()/b.push.Seconds(), p.pull.Seconds()/b.pull.Seconds())
	return nil
}

func median(s []sample, f func(sample) time.Duration) time.Duration {
	ds := make([]time.Duration, len(s))
	for i, x := range s {
		ds[i] = f(x)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// startPlain runs distribution's own registry (what `registry serve` runs)
// with the settings of its config-example.yml, minus htpasswd auth, and
// OTEL_TRACES_EXPORTER=none as in distribution's image. It logs at its usual
// level (info: a line per request, every 404 at error) through logrus'
// global logger, whose output is discarded here so the table stays readable;
// the access log, which goes straight to stdout, is off.
func startPlain(ctx context.Context, dir string) (string, func(), error) {
	addr, err := ports.New().Addr()
	if err != nil {
		return "", nil, err
	}
	if os.Getenv("OTEL_TRACES_EXPORTER") == "" {
		os.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	logrus.SetOutput(io.Discard)
	c := &configuration.Configuration{Version: "0.1"}
	c.Log.Level = "info"
	c.Log.AccessLog.Disabled = true
	c.Log.Fields = map[string]any{"service": "registry"}
	c.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": dir},
		"cache":      configuration.Parameters{"blobdescriptor": "inmemory"},
		"tag":        configuration.Parameters{"concurrencylimit": 8},
	}
	c.HTTP.Addr = addr
	c.HTTP.Headers = http.Header{"X-Content-Type-Options": {"nosniff"}}
	c.Health.StorageDriver.Enabled = true
	c.Health.StorageDriver.Interval = 10 * time.Second
	c.Health.StorageDriver.Threshold = 3
	reg, err := distregistry.NewRegistry(ctx, c)
	if err != nil {
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- reg.ListenAndServe() }()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		reg.Shutdown(sctx)
		<-done
	}
	return addr, stop, nil
}

func waitUp(ctx context.Context, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// buildImage writes layers files of random data totalling mb MB and builds a
// FROM scratch image with one COPY (one layer) per file.
func buildImage(ctx context.Context, dir, ref string, mb, layers int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	df := "FROM scratch\n"
	per := int64(mb) * 1_000_000 / int64(layers)
	for i := range layers {
		name := fmt.Sprintf("data%d", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		_, err = io.CopyN(f, rand.Reader, per)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		df += fmt.Sprintf("COPY %s /%s\n", name, name)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", err
	}
	out, err := docker(ctx, "build", "-q", "-t", ref, dir)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// imageBytes sums the sizes of the blobs a manifest lists: what a push or
// pull moves.
func imageBytes(ctx context.Context, addr, repo, dgst string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/"+repo+"/manifests/"+dgst, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var m struct {
		Config struct{ Size int64 }
		Layers []struct{ Size int64 }
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return 0, fmt.Errorf("manifest %s@%s: %w", repo, dgst, err)
	}
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

func docker(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
