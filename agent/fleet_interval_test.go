package agent

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The server may stretch the check-in interval (to shed load), up to a
// day, and never shorten it below fleet.checkin_interval.
func TestFleetIntervalTakesTheServersLongerIntervalWithinBounds(t *testing.T) {
	h := time.Hour
	for _, c := range []struct {
		configured, asked, want time.Duration
	}{
		{h, 0, h},                // nothing asked
		{h, time.Minute, h},      // never more often than configured
		{h, 3 * h, 3 * h},        // stretched
		{h, 48 * h, 24 * h},      // capped at a day
		{30 * h, 48 * h, 30 * h}, // a configured interval above the cap stays
		{time.Minute, time.Minute, time.Minute},
	} {
		if got := fleetInterval(c.configured, c.asked); got != c.want {
			t.Errorf("fleetInterval(%s, %s) = %s, want %s", c.configured, c.asked, got, c.want)
		}
	}
}

// A check-in announces the longest gap until the next one: the check-in
// interval or, when longer, the daemon's longest sleep between polls. A
// longer interval the server asks for is announced before it spaces the
// check-ins.
func TestCheckInIntervalsAnnounceTheLongestGap(t *testing.T) {
	h := time.Hour
	sleep := 6*h + 30*time.Minute // the defaults: poll.interval 6h + poll.jitter 30m
	for _, c := range []struct {
		name                                string
		configured, asked, announced, sleep time.Duration
		wantDue, wantAnnounce               time.Duration
	}{
		{"an idle agent with the defaults announces its poll's sleep", h, 0, 0, sleep, h, sleep},
		{"an interval longer than the sleep is announced as it is", 12 * h, 0, 0, sleep, 12 * h, 12 * h},
		{"a longer interval the server asks for is announced but not yet kept", h, 24 * h, 0, sleep, h, 24 * h},
		{"once announced the server's interval spaces the check-ins", h, 24 * h, 24 * h, sleep, 24 * h, 24 * h},
		{"a shorter interval the server asks for applies at once", h, 2 * h, 24 * h, sleep, 2 * h, sleep},
		{"the server's interval is capped at a day", h, 48 * h, 48 * h, sleep, 24 * h, 24 * h},
	} {
		t.Run(c.name, func(t *testing.T) {
			due, announce := checkInIntervals(c.configured, c.asked, c.announced, c.sleep)
			if due != c.wantDue || announce != c.wantAnnounce {
				t.Fatalf("due %s, announce %s; want %s, %s", due, announce, c.wantDue, c.wantAnnounce)
			}
		})
	}
}

// Whatever the polls' spacing (full sleeps, retries a minute apart) and
// whatever interval the server asks for and when, the gap between two
// check-ins of a running agent stays under twice what the first one
// announced: the server (stale after three) never shows it stale.
func TestCheckInGapsStayUnderTwiceTheAnnouncedInterval(t *testing.T) {
	h := time.Hour
	rng := rand.New(rand.NewPCG(1, 2))
	for _, configured := range []time.Duration{time.Minute, h, 12 * h, 30 * h} {
		sleep := 6*h + 30*time.Minute
		var now, last, asked, announced, lastAnnounce time.Duration
		checkedIn := false
		for poll := 0; poll < 5000; poll++ {
			if rng.IntN(3) == 0 {
				now += time.Minute << rng.IntN(8) // a retry or a window: sooner than a poll
			} else {
				now += 6*h + time.Duration(rng.Int64N(int64(30*time.Minute))) // a poll: interval plus jitter
			}
			due, announce := checkInIntervals(configured, asked, announced, sleep)
			if checkedIn && now-last < due {
				continue
			}
			if checkedIn && now-last >= 2*lastAnnounce {
				t.Fatalf("configured %s: a check-in %s after the one before, which announced %s", configured, now-last, lastAnnounce)
			}
			checkedIn, last, lastAnnounce = true, now, announce
			announced, asked = asked, []time.Duration{0, 2 * h, 24 * h, 48 * h}[rng.IntN(4)]
		}
	}
}
