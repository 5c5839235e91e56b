// Package wait polls a condition until it holds or a deadline passes, so
// tests wait on facts instead of sleeping.
package wait

import (
	"context"
	"fmt"
	"time"
)

// For calls cond every interval until it returns nil or timeout passes; the
// error then names what was awaited and the last reason it was not true.
func For(ctx context.Context, what string, timeout, interval time.Duration, cond func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited %s for %s: %w", timeout, what, last)
		case <-time.After(interval):
		}
	}
}
