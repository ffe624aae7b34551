package server

import (
	"fmt"
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

func TestASourceIsAnIPv4AddressOrAnIPv6Slash64AndItsSlash48(t *testing.T) {
	s, _ := testSources(Limits{WriteRate: 1, WriteBurst: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::1/128"), netip.MustParsePrefix("fe80::/64")}})
	for _, c := range []struct {
		remote, keys string
		exempt       bool
	}{
		{"192.0.2.7:4242", "[192.0.2.7/32]", false},
		{"[::ffff:192.0.2.7]:4242", "[192.0.2.7/32]", false},
		{"[2001:db8:1:2:aaaa::1]:4242", "[2001:db8:1::/48 2001:db8:1:2::/64]", false},
		{"[2001:db8:1:2:bbbb::9]:80", "[2001:db8:1::/48 2001:db8:1:2::/64]", false},
		{"10.9.8.7:1", "[]", true},
		{"[2001:db8:ffff::1]:1", "[]", true},
		{"[2001:db8:ffff::2]:1", "[2001:db8:ffff::/48 2001:db8:ffff::/64]", false},
		{"[fe80::1%eth0]:1", "[]", true},
		{"[fe80:0:0:1::1%eth0]:1", "[fe80::/48 fe80:0:0:1::/64]", false},
		{"@", "[invalid Prefix]", false},
	} {
		keys, exempt := s.keys(c.remote)
		if got := fmt.Sprint(keys); got != c.keys || exempt != c.exempt {
			t.Errorf("%s: sources %s (exempt %v), want %s (%v)", c.remote, got, exempt, c.keys, c.exempt)
		}
	}
}

func TestTheSlash64sOfASlash48ShareItsBuckets(t *testing.T) {
	s, _ := testSources(Limits{WriteRate: 1.0 / 3600, WriteBurst: 1})
	for i := range Slash48Sources {
		if _, ok := s.allow(fmt.Sprintf("[2001:db8:1:%x::1]:1", i), true, t0); !ok {
			t.Fatalf("/64 number %d of the /48 refused its first write", i+1)
		}
	}
	if _, ok := s.allow("[2001:db8:1:ffff::1]:1", true, t0); ok {
		t.Fatalf("a /64 past the %d the /48 holds was served: a /48 gets more than %d sources' limits", Slash48Sources, Slash48Sources)
	}
	if _, ok := s.m[netip.MustParsePrefix("2001:db8:1:ffff::/64")]; ok {
		t.Fatal("the /64 the /48 refused has an entry: refused requests, which cost nothing, would fill the table")
	}
	if _, ok := s.allow("[2001:db8:2::1]:1", true, t0); !ok {
		t.Fatal("another /48 refused")
	}
}

func TestRefusedRequestsDoNotPushSourcesOutOfTheTable(t *testing.T) {
	s, _ := testSources(Limits{WriteRate: 1.0 / 3600, WriteBurst: 1, MaxSources: Slash48Sources + 2})
	const spent = "192.0.2.1:1"
	if _, ok := s.allow(spent, true, t0); !ok {
		t.Fatal("a source's first write refused")
	}
	// One /48's every /64, far more than the table holds: the /48 serves
	// Slash48Sources of them, and the rest are refused without an entry.
	for i := range 4 * (Slash48Sources + 2) {
		s.allow(fmt.Sprintf("[2001:db8:1:%x::1]:1", i), true, t0)
	}
	if _, ok := s.allow(spent, true, t0); ok {
		t.Fatal("the source that spent its bucket was served again: refused requests pushed it out of the table and it came back with full buckets")
	}
}

func TestAFullSourceTableMakesRoomForNewcomers(t *testing.T) {
	s, _ := testSources(Limits{WriteRate: 1.0 / 3600, WriteBurst: 2, MaxSources: 4, Idle: 5 * time.Minute})
	take := func(remote string, now time.Time) bool {
		_, ok := s.allow(remote, true, now)
		return ok
	}
	const flooder = "198.51.100.1:1"
	if got := [3]bool{take(flooder, t0), take(flooder, t0), take(flooder, t0)}; got != [3]bool{true, true, false} {
		t.Fatalf("three writes of a source with a bucket of 2: served %v", got)
	}
	// A flood of sources, each new: every one is served with buckets of
	// its own, the table stays at its cap, and the flooder, seen again
	// and again, keeps its empty bucket.
	for i := range 1000 {
		if !take(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}).String()+":1", t0) {
			t.Fatalf("new source %d of the flood refused its first write: it should take the place of the least recently seen", i+1)
		}
		if len(s.m) > 4 {
			t.Fatalf("%d sources remembered, more than the cap of 4", len(s.m))
		}
		if i%2 == 0 && take(flooder, t0) {
			t.Fatalf("after %d new sources the flooder got a fresh bucket: a recently seen source was forgotten", i+1)
		}
	}
	if got := [2]bool{take("192.0.2.1:1", t0), take("192.0.2.1:1", t0)}; got != [2]bool{true, true} {
		t.Fatalf("a legitimate source arriving during the flood: served %v, want its bucket of 2", got)
	}

	t.Run("an idle source whose buckets are full again is forgotten", func(t *testing.T) {
		s, _ := testSources(Limits{WriteRate: 1, WriteBurst: 2, Idle: 5 * time.Minute})
		s.allow("192.0.2.1:1", true, t0)
		for i := 1; i <= 5; i++ {
			s.allow("192.0.2.2:1", true, t0.Add(time.Duration(i)*time.Minute))
			if _, kept := s.m[netip.MustParsePrefix("192.0.2.1/32")]; kept != (i < 5) {
				t.Fatalf("after %d min idle: remembered %v", i, kept)
			}
		}
	})
	t.Run("an idle source whose bucket is not full again is kept", func(t *testing.T) {
		s, _ := testSources(Limits{WriteRate: 1.0 / 3600, WriteBurst: 1, Idle: time.Minute})
		s.allow("192.0.2.1:1", true, t0)
		s.allow("192.0.2.2:1", true, t0.Add(10*time.Minute)) // sweeps
		if _, kept := s.m[netip.MustParsePrefix("192.0.2.1/32")]; !kept {
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
