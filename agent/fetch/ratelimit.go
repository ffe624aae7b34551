package fetch

import (
	"context"
	"sync"
	"time"

	"github.com/cavaliergopher/grab/v3"
)

// RateLimiter is a token bucket that caps a download's bandwidth. It
// satisfies grab.RateLimiter. A WaitN larger than the bucket is allowed: the
// bucket goes into debt and the caller sleeps until it is paid back, so the
// long-run rate never exceeds the limit whatever the buffer size.
type RateLimiter struct {
	rate  float64 // bytes per second
	burst float64 // bucket size in bytes

	// Now and Sleep are seams for tests; the defaults use the wall clock.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

var _ grab.RateLimiter = (*RateLimiter)(nil)

// NewRateLimiter returns a limiter allowing bytesPerSecond on average, with
// a burst of a quarter second's worth of bytes (at least 1 KiB).
func NewRateLimiter(bytesPerSecond int64) *RateLimiter {
	burst := float64(bytesPerSecond) / 4
	if burst < 1024 {
		burst = 1024
	}
	return &RateLimiter{rate: float64(bytesPerSecond), burst: burst, tokens: burst,
		Now: time.Now, Sleep: sleepCtx}
}

// WaitN takes n bytes' worth of tokens, sleeping as long as the bucket is in
// debt. It returns early with the context's error if ctx ends.
func (l *RateLimiter) WaitN(ctx context.Context, n int) error {
	l.mu.Lock()
	now := l.Now()
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
	}
	l.last = now
	l.tokens -= float64(n)
	var wait time.Duration
	if l.tokens < 0 {
		wait = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if wait <= 0 {
		return ctx.Err()
	}
	return l.Sleep(ctx, wait)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
