// Command controlplane benchmarks a real 3-server berth cluster on loopback:
// config writes per second with p50/p99 latency at 1 and 64 concurrent
// clients, and leader failover time (SIGKILL of the leader → first
// acknowledged write) over several trials.
//
//	go run ./bench/controlplane [-duration 5s] [-trials 10]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/e2e/harness"
)

func main() {
	duration := flag.Duration("duration", 5*time.Second, "how long each throughput run lasts")
	trials := flag.Int("trials", 10, "leader failover trials")
	flag.Parse()
	if err := run(*duration, *trials); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(duration time.Duration, trials int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := harness.Build(ctx, dir)
	if err != nil {
		return err
	}
	// Production raft timings (nil = server defaults), not the test ones.
	c, err := harness.New(bin, dir, 3, harness.Options{Raft: map[string]any{}})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	clients := func(i int) *api.Client { return api.NewClient(c.Servers[i].APIAddr, c.RootToken, hc) }
	leader, err := c.WaitLeader(ctx, 20*time.Second)
	if err != nil {
		return err
	}
	if _, err := clients(leader).CreateApp(ctx, "bench"); err != nil {
		return err
	}

	fmt.Printf("berth control plane: 3 servers on loopback, %d cores\n\n", runtime.NumCPU())
	fmt.Printf("%-34s %10s %10s %10s %8s\n", "config writes", "writes/s", "p50", "p99", "errors")
	for _, conc := range []int{1, 64} {
		for _, via := range []struct {
			name string
			idx  int
		}{{"leader", leader}, {"follower (forwarded)", (leader + 1) % 3}} {
			r := throughput(ctx, clients(via.idx), conc, duration)
			fmt.Printf("%-34s %10.0f %10s %10s %8d\n", fmt.Sprintf("%d client(s) via %s", conc, via.name), r.rate, r.p50, r.p99, r.errors)
		}
	}

	fmt.Printf("\nleader failover (SIGKILL leader → first acknowledged write), %d trials\n", trials)
	var times []time.Duration
	for i := range trials {
		d, err := failover(ctx, c, clients)
		if err != nil {
			return fmt.Errorf("trial %d: %w", i+1, err)
		}
		times = append(times, d)
		fmt.Printf("  trial %2d: %s\n", i+1, d.Round(time.Millisecond))
	}
	slices.Sort(times)
	fmt.Printf("failover median %s, max %s\n", times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	return nil
}

type result struct {
	rate     float64
	p50, p99 time.Duration
	errors   int64
}

// throughput runs conc clients writing config for duration.
func throughput(ctx context.Context, cl *api.Client, conc int, duration time.Duration) result {
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for n := 0; time.Now().Before(deadline); n++ {
				t0 := time.Now()
				_, err := cl.UpdateConfig(ctx, "bench", api.ConfigUpdateRequest{Set: map[string]string{fmt.Sprintf("K%d", w): fmt.Sprint(n)}})
				if err != nil {
					errs.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := result{rate: float64(len(lat)) / elapsed.Seconds(), errors: errs.Load()}
	if len(lat) > 0 {
		r.p50 = lat[len(lat)/2].Round(10 * time.Microsecond)
		r.p99 = lat[len(lat)*99/100].Round(10 * time.Microsecond)
	}
	return r
}

// failover kills the leader and times the first write acknowledged by the
// survivors, then restarts the dead server and waits for a stable leader.
func failover(ctx context.Context, c *harness.Cluster, clients func(int) *api.Client) (time.Duration, error) {
	leader, err := c.WaitLeader(ctx, 20*time.Second)
	if err != nil {
		return 0, err
	}
	c.Kill(leader)
	start := time.Now()
	var took time.Duration
	for n := 0; took == 0; n++ {
		if time.Since(start) > 30*time.Second {
			return 0, fmt.Errorf("no write acknowledged 30 s after the leader died")
		}
		for i := range c.Servers {
			if i == leader {
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := clients(i).UpdateConfig(wctx, "bench", api.ConfigUpdateRequest{Set: map[string]string{"FAILOVER": fmt.Sprint(n)}})
			cancel()
			if err == nil {
				took = time.Since(start)
				break
			}
		}
	}
	if err := c.Restart(leader); err != nil {
		return 0, err
	}
	if _, err := c.WaitLeader(ctx, 20*time.Second); err != nil {
		return 0, err
	}
	return took, nil
}
