package server

import (
	"net/netip"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func testSources(lim Limits) (*sources, *logtest.Hook) {
	log, hook := logtest.NewNullLogger()
	return newSources(lim, log), hook
}

func TestASourceIsAnIPv4AddressOrAnIPv6Slash64(t *testing.T) {
	s, _ := testSources(Limits{WriteRate: 1, WriteBurst: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::1/128")}})
	for _, c := range []struct {
		remote, key string
		exempt      bool
	}{
		{"192.0.2.7:4242", "192.0.2.7", false},
		{"[::ffff:192.0.2.7]:4242", "192.0.2.7", false},
		{"[2001:db8:1:2:aaaa::1]:4242", "2001:db8:1:2::", false},
		{"[2001:db8:1:2:bbbb::9]:80", "2001:db8:1:2::", false},
		{"10.9.8.7:1", "10.9.8.7", true},
		{"[2001:db8:ffff::1]:1", "2001:db8:ffff::1", true},
		{"[2001:db8:ffff::2]:1", "2001:db8:ffff::", false},
		{"@", "invalid IP", false},
	} {
		key, exempt := s.key(c.remote)
		if key.String() != c.key || exempt != c.exempt {
			t.Errorf("%s: source %s (exempt %v), want %s (%v)", c.remote, key, exempt, c.key, c.exempt)
		}
	}
}

func TestTheSourceTableIsCappedAndForgetsIdleSources(t *testing.T) {
	s, _ := testSources(Limits{WriteRate: 1, WriteBurst: 2, MaxSources: 2, Idle: 5 * time.Minute})
	take := func(remote string, now time.Time) bool {
		_, ok := s.allow(remote, true, now)
		return ok
	}
	// Two sources fill the table; the third and fourth share the overflow
	// bucket (2 at once) and are limited as one.
	for _, r := range []string{"192.0.2.1:1", "192.0.2.2:1", "192.0.2.3:1", "192.0.2.4:1"} {
		if !take(r, t0) {
			t.Fatalf("%s refused on its first request", r)
		}
	}
	if take("192.0.2.5:1", t0) {
		t.Fatal("a fifth source beyond the cap got a bucket of its own: the overflow sources share one")
	}
	if len(s.m) != 2 {
		t.Fatalf("%d sources remembered, want the cap, 2", len(s.m))
	}
	if !take("192.0.2.1:1", t0) || take("192.0.2.1:1", t0) {
		t.Fatal("a remembered source does not keep its own bucket of 2")
	}

	// 192.0.2.2 stays busy; 192.0.2.1 goes idle with an empty bucket.
	// After a minute its bucket is full again but it is not idle long
	// enough; after 5 minutes it is forgotten and a new source takes its
	// place.
	for i := 1; i <= 5; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		take("192.0.2.2:1", now)
		if _, kept := s.m[netip.MustParseAddr("192.0.2.1")]; kept != (i < 5) {
			t.Fatalf("after %d min idle: remembered %v", i, kept)
		}
	}
	at := t0.Add(5 * time.Minute)
	take("192.0.2.9:1", at)
	if _, ok := s.m[netip.MustParseAddr("192.0.2.9")]; !ok || len(s.m) != 2 {
		t.Fatalf("the forgotten source's place was not taken: %v", s.m)
	}

	t.Run("an idle source whose bucket is not full again is kept", func(t *testing.T) {
		s, _ := testSources(Limits{WriteRate: 1.0 / 3600, WriteBurst: 1, Idle: time.Minute})
		s.allow("192.0.2.1:1", true, t0)
		s.allow("192.0.2.2:1", true, t0.Add(10*time.Minute)) // sweeps
		if _, kept := s.m[netip.MustParseAddr("192.0.2.1")]; !kept {
			t.Fatal("forgotten while its bucket was empty: it would get a full one back")
		}
	})
}

func TestASourceOverItsLimitIsLoggedOnceAMinute(t *testing.T) {
	s, hook := testSources(Limits{WriteRate: 1.0 / 3600, WriteBurst: 1})
	for i := range 100 {
		s.allow("192.0.2.1:1", true, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	if n := len(hook.AllEntries()); n != 1 {
		t.Fatalf("%d log lines for 99 refusals within 10 s, want 1", n)
	}
	if e := hook.LastEntry(); e.Message != "requests over the write limit (1 every 1h0m0s, 1 at once) answered 429" {
		t.Fatalf("the line says %q", e.Message)
	}
	s.allow("192.0.2.1:1", true, t0.Add(61*time.Second)) // a minute after the first line
	e := hook.LastEntry()
	if n := len(hook.AllEntries()); n != 2 || e.Level != logrus.WarnLevel || e.Data["refused"] != 99 || e.Data["source"] != "192.0.2.1" {
		t.Fatalf("%d lines, the last %v %v; want a second line a minute later counting the 99 refusals since the first", n, e.Message, e.Data)
	}

	t.Run("many sources flood no log", func(t *testing.T) {
		s, hook := testSources(Limits{WriteRate: 1.0 / 3600, WriteBurst: 1})
		for i := range 250 {
			r := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String() + ":1"
			s.allow(r, true, t0)
			s.allow(r, true, t0)
		}
		if n := len(hook.AllEntries()); n != 20 {
			t.Fatalf("%d lines for 250 sources at once, want the 20 a burst allows", n)
		}
	})
}
