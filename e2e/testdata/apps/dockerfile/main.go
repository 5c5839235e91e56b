// Command server is the app of berth's sample Dockerfile build: "hello from
// dockerfile" on /, the value of an environment variable on /env/NAME, on
// $PORT.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
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
		fmt.Fprintln(w, "hello from dockerfile")
	})
	log.Printf("listening on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
