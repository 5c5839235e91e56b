package router

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// Benchmarks of the route table at scale and of route changes reaching
// requests. Run them with
//
//	go test -run '^$' -bench 'Table|Switch' -benchtime 2000x ./router/

const benchApps = 10_000

// benchRoutes is a snapshot of n apps: every app answers on
// APP.apps.test, every tenth has a custom host and every hundredth a
// wildcard one; two upstreams each (never dialled by the table benchmarks).
func benchRoutes(n int) []Route {
	routes := make([]Route, n)
	for i := range routes {
		r := Route{
			App:       fmt.Sprintf("app-%05d", i),
			Release:   1,
			Upstreams: []string{fmt.Sprintf("10.%d.%d.1:8080", i>>8&0xff, i&0xff), fmt.Sprintf("10.%d.%d.2:8080", i>>8&0xff, i&0xff)},
		}
		if i%10 == 0 {
			r.Hosts = append(r.Hosts, fmt.Sprintf("www.customer-%05d.com", i))
		}
		if i%100 == 0 {
			r.Hosts = append(r.Hosts, fmt.Sprintf("*.tenant-%05d.net", i))
		}
		routes[i] = r
	}
	return routes
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkTableBuild: building (validating, indexing) a 10,000-app table,
// as every route change does, and the heap the table keeps per app.
func BenchmarkTableBuild(b *testing.B) {
	routes := benchRoutes(benchApps)
	before := heapInUse()
	t, err := NewTable(routes, "apps.test")
	if err != nil {
		b.Fatal(err)
	}
	perApp := float64(heapInUse()-before) / benchApps
	runtime.KeepAlive(t)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := NewTable(routes, "apps.test"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(perApp, "heap-B/app")
}

// BenchmarkTableLookup: the per-request routing cost with 10,000 apps in
// the table: host normalisation, lookup and picking an upstream.
func BenchmarkTableLookup(b *testing.B) {
	t, err := NewTable(benchRoutes(benchApps), "apps.test")
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, host, app string }{
		{"exact", "www.customer-04210.com", "app-04210"},
		{"apps-domain", "app-04217.apps.test", "app-04217"},
		{"apps-domain-port", "App-04217.apps.test:8080", "app-04217"},
		{"wildcard", "shop.tenant-04200.net", "app-04200"},
		{"unknown", "nope.example.org", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if rt := t.lookup(requestHost(bc.host)); bc.app != "" && (rt == nil || rt.App != bc.app) {
				b.Fatalf("%s routes to %v", bc.host, rt)
			}
			b.ReportAllocs()
			now := nanotime()
			for b.Loop() {
				if rt := t.lookup(requestHost(bc.host)); rt != nil {
					if rt.pick(now, nil) == nil {
						b.Fatal("no upstream")
					}
				}
			}
		})
	}
}

// BenchmarkSwitch: the time from a Source delivering a new release of one
// app (StaticSource.Set) to the router serving it: WaitForRelease
// returning ("wait") and the first request through the router reaching the
// new release's upstream ("request"), over b.N switches, p50 and p99.
// With 10,000 apps every switch rebuilds a 10,000-app table; the
// state-file case also writes it to disk (fsync) as production routers do.
func BenchmarkSwitch(b *testing.B) {
	for _, bc := range []struct {
		name  string
		apps  int
		state bool
	}{
		{"apps=1", 1, false},
		{"apps=10000", benchApps, false},
		{"apps=10000/state-file", benchApps, true},
	} {
		b.Run(bc.name, func(b *testing.B) { benchSwitch(b, bc.apps, bc.state) })
	}
}

func benchSwitch(b *testing.B, apps int, state bool) {
	// Two releases of app-00000, each answering with its release number.
	var addrs [2]string
	for i := range addrs {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, i)
		})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(ln)
		b.Cleanup(func() { srv.Close() })
		addrs[i] = ln.Addr().String()
	}
	routes := benchRoutes(apps)
	routes[0].Upstreams = []string{addrs[0]}
	src := NewStaticSource(routes...)
	opts := Options{Source: src}
	if state {
		opts.StateFile = filepath.Join(b.TempDir(), "routes.json")
	}
	r := startRouter(b, opts)
	r.waitRelease(b, routes[0].App, 1)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	url := "http://" + r.Addr() + "/"
	get := func() (string, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Host = routes[0].App + ".apps.test"
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}
	if _, err := get(); err != nil {
		b.Fatal(err)
	}

	var waits, requests []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		next := (i + 1) % 2
		routes[0].Release++
		routes[0].Upstreams = []string{addrs[next]}
		start := time.Now()
		src.Set(routes...)
		r.waitRelease(b, routes[0].App, routes[0].Release)
		waits = append(waits, time.Since(start))
		for {
			body, err := get()
			if err != nil {
				b.Fatal(err)
			}
			if body == fmt.Sprint(next) {
				break
			}
		}
		requests = append(requests, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(waits, 50).Microseconds()), "wait-p50-µs")
	b.ReportMetric(float64(percentile(waits, 99).Microseconds()), "wait-p99-µs")
	b.ReportMetric(float64(percentile(requests, 50).Microseconds()), "request-p50-µs")
	b.ReportMetric(float64(percentile(requests, 99).Microseconds()), "request-p99-µs")
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
