// Package ports hands out free loopback TCP ports for tests and benchmarks.
//
// It asks the kernel for a port by listening on 127.0.0.1:0 and closing the
// listener. A port is never handed out twice by one Allocator, which avoids
// the common collision of two servers in one test getting the same port.
package ports

import (
	"fmt"
	"net"
	"sync"
)

// Allocator remembers the ports it gave out.
type Allocator struct {
	mu   sync.Mutex
	used map[int]bool
}

// New returns an empty allocator.
func New() *Allocator { return &Allocator{used: map[int]bool{}} }

// Addr returns "127.0.0.1:PORT" for a port that was free a moment ago.
func (a *Allocator) Addr() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("find a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !a.used[port] {
			a.used[port] = true
			return fmt.Sprintf("127.0.0.1:%d", port), nil
		}
	}
	return "", fmt.Errorf("no unused port found")
}
