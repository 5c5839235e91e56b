// Command testapp is the app the runtime conformance suite
// (scheduler/runtimetest) runs on every runtime. It is built as a static
// binary into an image FROM scratch, both as /testapp (the entrypoint) and
// as /bin/sh, so that Procfile-style commands (which runtimes run with
// `/bin/sh -c COMMAND`) work in an image with no real shell.
//
// Modes, chosen by the arguments:
//
//	testapp                 web server on $PORT (the default)
//	testapp worker          prints "tick N" every 200ms, no HTTP
//	testapp exit N          exits with status N
//	testapp echo            copies stdin to stdout
//	testapp env NAME        prints the value of NAME (exits 1 if unset)
//	testapp sleep [D]       sleeps for duration D (default: until SIGTERM)
//	/bin/sh -c "COMMAND"    splits COMMAND into words and executes it;
//	                        "sleep D|infinity" and "exit N" are built in
//
// The web server answers GET / with "ok $RELEASE $HOSTNAME", GET /healthz
// with 200 (500 when FAIL_HEALTH=1) and GET /env/NAME with the value of
// NAME. CRASH=1 makes it exit 1 at once; SLOW_START=2s delays listening; on
// SIGTERM it waits DRAIN_DELAY (default 0) and exits 0. It prints
// "started" and one line per request on stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	if path.Base(os.Args[0]) == "sh" {
		os.Exit(shell(args))
	}
	if len(args) == 0 {
		os.Exit(web())
	}
	switch args[0] {
	case "web":
		os.Exit(web())
	case "worker":
		os.Exit(worker())
	case "exit":
		code := 0
		if len(args) > 1 {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				fmt.Fprintf(os.Stderr, "testapp exit: %v\n", err)
				os.Exit(2)
			}
			code = n
		}
		os.Exit(code)
	case "sleep":
		os.Exit(sleep(args[1:]))
	case "echo":
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			fmt.Fprintf(os.Stderr, "testapp echo: %v\n", err)
			os.Exit(1)
		}
	case "env":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: testapp env NAME")
			os.Exit(2)
		}
		v, ok := os.LookupEnv(args[1])
		if !ok {
			fmt.Fprintf(os.Stderr, "%s is not set\n", args[1])
			os.Exit(1)
		}
		fmt.Print(v)
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown mode %q\n", args[0])
		os.Exit(2)
	}
}

// shell is a tiny stand-in for `/bin/sh -c COMMAND`: it splits COMMAND on
// white space and executes it, replacing itself (so signals reach the
// program, as with a real shell's exec of a simple command). Only plain
// words are understood; anything that needs a real shell is refused.
func shell(args []string) int {
	if len(args) != 2 || args[0] != "-c" {
		fmt.Fprintln(os.Stderr, "testapp sh: only `sh -c COMMAND` is supported")
		return 2
	}
	if strings.ContainsAny(args[1], "'\"`$;|&<>(){}*?\\") {
		fmt.Fprintf(os.Stderr, "testapp sh: %q needs a real shell\n", args[1])
		return 2
	}
	words := strings.Fields(args[1])
	if len(words) > 0 && words[0] == "exec" {
		words = words[1:]
	}
	if len(words) == 0 {
		return 0
	}
	switch words[0] {
	case "sleep": // what a runtime may use to keep a task up for exec
		return sleep(words[1:])
	case "exit":
		code := 0
		if len(words) > 1 {
			code, _ = strconv.Atoi(words[1])
		}
		return code
	}
	prog := words[0]
	if !strings.Contains(prog, "/") {
		prog = "/" + prog // the image's only directory of programs is /
	}
	err := syscall.Exec(prog, words, os.Environ())
	fmt.Fprintf(os.Stderr, "testapp sh: %s: %v\n", words[0], err)
	if errors.Is(err, syscall.ENOENT) {
		return 127
	}
	return 126
}

func web() int {
	if os.Getenv("CRASH") == "1" {
		fmt.Println("crashing: CRASH=1")
		return 1
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if d := os.Getenv("SLOW_START"); d != "" {
		wait, err := time.ParseDuration(d)
		if err != nil {
			fmt.Fprintf(os.Stderr, "SLOW_START: %v\n", err)
			return 2
		}
		fmt.Printf("slow start: listening in %s\n", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return 0
		}
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s %s", os.Getenv("RELEASE"), host)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("FAIL_HEALTH") == "1" {
			http.Error(w, "unhealthy: FAIL_HEALTH=1", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "healthy")
	})
	mux.HandleFunc("GET /env/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := os.LookupEnv(r.PathValue("name"))
		if !ok {
			http.Error(w, "not set", http.StatusNotFound)
			return
		}
		fmt.Fprint(w, v)
	})
	srv := &http.Server{
		Addr:              ":" + port,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request %s %s\n", r.Method, r.URL.RequestURI())
			mux.ServeHTTP(w, r)
		}),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	fmt.Printf("started on :%s\n", port)
	select {
	case err := <-errc:
		fmt.Fprintf(os.Stderr, "listen: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	drain := time.Duration(0)
	if d := os.Getenv("DRAIN_DELAY"); d != "" {
		if v, err := time.ParseDuration(d); err == nil {
			drain = v
		}
	}
	fmt.Printf("SIGTERM: draining for %s\n", drain)
	time.Sleep(drain)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	fmt.Println("stopped")
	return 0
}

func worker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fmt.Println("started worker")
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			fmt.Println("stopped")
			return 0
		case <-t.C:
			fmt.Printf("tick %d\n", n)
		}
	}
}

// sleep waits for a duration ("infinity" or none: until SIGTERM).
func sleep(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var done <-chan time.Time
	if len(args) > 0 && args[0] != "infinity" {
		d, err := time.ParseDuration(args[0])
		if err != nil {
			secs, err2 := strconv.Atoi(args[0])
			if err2 != nil {
				fmt.Fprintf(os.Stderr, "sleep: %v\n", err)
				return 2
			}
			d = time.Duration(secs) * time.Second
		}
		done = time.After(d)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return 0
}
