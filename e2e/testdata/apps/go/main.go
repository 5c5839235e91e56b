// Command berth-sample-go is berth's sample Go app: it answers "hello from
// go" on / and the value of an environment variable on /env/NAME, on $PORT.
// With -worker it is the sample worker process.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	worker := flag.Bool("worker", false, "run as the background worker")
	flag.Parse()
	if *worker {
		for {
			log.Print("worker: tick")
			time.Sleep(time.Minute)
		}
	}
	port := os.Getenv("PORT")
	if port == "" {
		log.Fatal("PORT is not set")
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/env/") {
			name := strings.TrimPrefix(r.URL.Path, "/env/")
			v, set := os.LookupEnv(name)
			if !set {
				http.Error(w, name+" is not set", http.StatusNotFound)
				return
			}
			fmt.Fprint(w, v)
			return
		}
		fmt.Fprintln(w, "hello from go")
	})
	log.Printf("listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
