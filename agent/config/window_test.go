package config

import (
	"testing"
	"time"
)

func mustWindow(t *testing.T, s string) Window {
	t.Helper()
	w, err := ParseWindow(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// at builds a time in loc; 2026-11-28 is a Saturday.
func at(loc *time.Location, day, hour, min int) time.Time {
	return time.Date(2026, 11, day, hour, min, 0, 0, loc)
}

func TestWindowContains(t *testing.T) {
	utc := time.UTC
	cases := []struct {
		name, window string
		t            time.Time
		want         bool
	}{
		{"a Saturday window contains Saturday 03:00", "Sat 02:00-04:00", at(utc, 28, 3, 0), true},
		{"a window includes its start", "Sat 02:00-04:00", at(utc, 28, 2, 0), true},
		{"a window excludes its end", "Sat 02:00-04:00", at(utc, 28, 4, 0), false},
		{"a Saturday window does not contain Sunday 03:00", "Sat 02:00-04:00", at(utc, 29, 3, 0), false},
		{"a weekday range contains Wednesday", "Mon-Fri 01:00-05:00", at(utc, 25, 1, 30), true},
		{"a weekday range does not contain Saturday", "Mon-Fri 01:00-05:00", at(utc, 28, 1, 30), false},
		{"a window crossing midnight contains the evening", "daily 23:00-01:00", at(utc, 28, 23, 30), true},
		{"a window crossing midnight contains the next morning", "daily 23:00-01:00", at(utc, 29, 0, 30), true},
		{"a window crossing midnight excludes noon", "daily 23:00-01:00", at(utc, 29, 12, 0), false},
		{"a Saturday night window reaches into Sunday", "Sat 23:00-02:00", at(utc, 29, 1, 0), true},
		{"a Saturday night window does not start on Sunday", "Sat 23:00-02:00", at(utc, 29, 23, 30), false},
		{"a Friday morning is not in a Saturday night window", "Sat 23:00-02:00", at(utc, 27, 1, 0), false},
		{"a window ending at 24:00 contains 23:59", "Sat 22:00-24:00", at(utc, 28, 23, 59), true},
		{"a wrapping day range contains Sunday", "Fri-Mon 02:00-03:00", at(utc, 29, 2, 0), true},
		{"a wrapping day range excludes Wednesday", "Fri-Mon 02:00-03:00", at(utc, 25, 2, 0), false},
		{"a day list contains Sunday", "Sat,Sun 10:00-11:00", at(utc, 29, 10, 0), true},
		{"a bare time range is daily", "02:00-04:00", at(utc, 25, 3, 0), true},
		{"a whole day contains midnight", "Sat 00:00-24:00", at(utc, 28, 0, 0), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustWindow(t, tc.window).Contains(tc.t); got != tc.want {
				t.Fatalf("Contains(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestWindowNext(t *testing.T) {
	utc := time.UTC
	cases := []struct {
		name, window string
		t, want      time.Time
	}{
		{"inside a window the answer is now", "Sat 02:00-04:00", at(utc, 28, 3, 0), at(utc, 28, 3, 0)},
		{"before a window the answer is its start", "Sat 02:00-04:00", at(utc, 28, 1, 0), at(utc, 28, 2, 0)},
		{"after a window the answer is next week's start", "Sat 02:00-04:00", at(utc, 28, 4, 0), at(utc, 28+7, 2, 0)},
		{"a daily window after midnight waits until tonight", "daily 23:00-01:00", at(utc, 29, 1, 0), at(utc, 29, 23, 0)},
		{"on Friday a weekday window waits until Monday", "Mon-Fri 01:00-05:00", at(utc, 27, 6, 0), at(utc, 30, 1, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustWindow(t, tc.window).Next(tc.t); !got.Equal(tc.want) {
				t.Fatalf("Next(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestWindowsAcrossDaylightSavingChanges(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	w := mustWindow(t, "Sun 01:00-04:00")
	// 2026-03-29: clocks jump from 02:00 to 03:00 in Berlin.
	spring := time.Date(2026, 3, 29, 3, 30, 0, 0, loc)
	if !w.Contains(spring) {
		t.Error("03:30 on the spring-forward night is not inside 01:00-04:00")
	}
	if got, want := w.Next(time.Date(2026, 3, 28, 12, 0, 0, 0, loc)), time.Date(2026, 3, 29, 1, 0, 0, 0, loc); !got.Equal(want) {
		t.Errorf("Next before the change = %v, want %v", got, want)
	}
	// 2026-10-25: clocks fall back from 03:00 to 02:00; the window is 4 hours long.
	autumnStart := time.Date(2026, 10, 25, 1, 0, 0, 0, loc)
	if !w.Contains(autumnStart.Add(3*time.Hour + 30*time.Minute)) {
		t.Error("the repeated hour is not inside the window")
	}
}

// Regression: a window inside the skipped hour collapsed to start == end and
// Next returned that start although Contains is false there.
func TestNextSkipsAWindowLostToSpringForward(t *testing.T) {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	w := mustWindow(t, "Sun 02:00-03:00")
	// 2026-03-29 has no 02:00-03:00 in Berlin: the next window is a week later.
	got := w.Next(time.Date(2026, 3, 28, 12, 0, 0, 0, loc))
	if want := time.Date(2026, 4, 5, 2, 0, 0, 0, loc); !got.Equal(want) {
		t.Fatalf("Next = %v; want %v", got, want)
	}
	if !w.Contains(got) {
		t.Fatalf("Next returned %v, which the window does not contain", got)
	}
}

func TestConfigWindows(t *testing.T) {
	utc := time.UTC
	t.Run("no windows means any time", func(t *testing.T) {
		c := &Config{}
		now := at(utc, 25, 12, 0)
		if !c.InWindow(now) || !c.NextWindow(now).Equal(now) {
			t.Fatal("an empty window list restricted installs")
		}
	})
	t.Run("the next window is the earliest of several", func(t *testing.T) {
		c := &Config{Windows: []Window{mustWindow(t, "Sat 02:00-04:00"), mustWindow(t, "Wed 22:00-23:00")}}
		now := at(utc, 25, 12, 0) // Wednesday noon
		if c.InWindow(now) {
			t.Fatal("noon is not in a window")
		}
		if got, want := c.NextWindow(now), at(utc, 25, 22, 0); !got.Equal(want) {
			t.Fatalf("NextWindow = %v, want %v", got, want)
		}
	})
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"Sat 02:00-04:00", "Mon-Fri 01:00-05:00", "daily 23:00-01:00", "Fri-Mon 0:00-24:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWindow(s)
		if err != nil {
			return
		}
		now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		n := w.Next(now)
		if n.IsZero() || n.Before(now) || !w.Contains(n) {
			t.Fatalf("%q: Next(%v) = %v is not inside the window", s, now, n)
		}
	})
}
