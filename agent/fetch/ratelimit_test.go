package fetch

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a clock that only moves when the limiter sleeps.
type fakeClock struct {
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.now = c.now.Add(d)
	c.slept += d
	return nil
}

func limiterWithClock(rate int64) (*RateLimiter, *fakeClock) {
	c := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	l := NewRateLimiter(rate)
	l.Now, l.Sleep = c.Now, c.Sleep
	return l, c
}

func TestRateLimiterKeepsTheAverageRate(t *testing.T) {
	tests := []struct {
		name  string
		rate  int64
		chunk int
		total int
	}{
		{"small chunks at 100 KB/s", 100_000, 1000, 1_000_000},
		{"chunks larger than the bucket at 10 KB/s", 10_000, 32 << 10, 320 << 10},
		{"a tiny rate still moves", 100, 1024, 10 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, c := limiterWithClock(tc.rate)
			for sent := 0; sent < tc.total; sent += tc.chunk {
				if err := l.WaitN(context.Background(), tc.chunk); err != nil {
					t.Fatal(err)
				}
			}
			// The first burst is free; everything after costs 1/rate per byte.
			want := time.Duration(float64(tc.total)-l.burst) * time.Second / time.Duration(tc.rate)
			if diff := c.slept - want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Errorf("slept %s, want %s", c.slept, want)
			}
		})
	}
}

func TestRateLimiterRefillsWhileIdleUpToTheBurst(t *testing.T) {
	l, c := limiterWithClock(1000)
	l.WaitN(context.Background(), 1024) // empties the 1 KiB bucket
	c.now = c.now.Add(time.Hour)        // a long idle refills only the burst
	c.slept = 0
	l.WaitN(context.Background(), 1024)
	if c.slept != 0 {
		t.Errorf("a full bucket should not sleep, slept %s", c.slept)
	}
	l.WaitN(context.Background(), 1000)
	if c.slept != time.Second {
		t.Errorf("1000 bytes at 1000 B/s on an empty bucket slept %s, want 1s", c.slept)
	}
}

func TestRateLimiterStopsWhenTheContextEnds(t *testing.T) {
	l := NewRateLimiter(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.WaitN(ctx, 1<<20); err == nil {
		t.Fatal("WaitN on a cancelled context should fail")
	}
}

func TestLimitedBufferStaysSmall(t *testing.T) {
	for _, tc := range []struct {
		limit int64
		want  int
	}{{100, 1024}, {100_000, 10_000}, {100 << 20, 32 << 10}} {
		if got := limitedBuffer(tc.limit); got != tc.want {
			t.Errorf("limitedBuffer(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}
