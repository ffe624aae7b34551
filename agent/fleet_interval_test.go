package agent

import (
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
