package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/agent/config"
	"github.com/fwagent/fwagent/agent/fetch/fetchtest"
	"github.com/fwagent/fwagent/agent/journal"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/fleet/server"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/verify"
)

// A real agent's check-in, as the fleet server stored it: the site it is
// configured with, the step under way and the share of the image staged.
func TestACheckInCarriesTheSiteTheStepAndTheDownloadsProgress(t *testing.T) {
	f := startFleet(t)
	w := newWorld(t, lab.Options{Releases: []lab.Release{bigCustom}})
	w.linkFleet(t, f, func(c *config.Config) {
		c.Fleet.Site = "warehouse-north"
		c.Download.RetryMax = 0 // the cut connection ends the cycle
	})
	w.fast(t, 0)
	img := w.image(t, bigCustom.ID)
	size := int64(len(img))
	srv := fetchtest.New(t, fetchtest.Options{Body: img, AcceptRanges: true, CutAt: []int64{size / 2}})
	w.serveImageFrom(t, srv.URL+"/image.dav")

	t.Run("a download cut halfway shows its step and the share staged", func(t *testing.T) {
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultFailed || !out.Transient {
			t.Fatalf("%s %v (%s), want a transient failure: the connection was cut", out.Result, out.Codes, out.Message)
		}
		cur := w.agent.Journal.State().Current
		if cur == nil || cur.Step != journal.StepDownload {
			t.Fatalf("journal %+v, want the update resumable at download", cur)
		}
		fi, err := os.Stat(cur.ImagePath)
		if err != nil {
			t.Fatal(err)
		}
		want := int(fi.Size() * 100 / size)
		if want <= 0 || want >= 100 {
			t.Fatalf("%d of %d bytes staged after a cut at %d: want a partial image", fi.Size(), size, size/2)
		}
		d := fleetDevice(t, f)
		if d.Site != "warehouse-north" || d.Step != string(journal.StepDownload) || d.ReleaseID != bigCustom.ID || d.Progress != want {
			t.Fatalf("fleet device: site %q, step %q, release %q, progress %d; want warehouse-north, download, %s, %d",
				d.Site, d.Step, d.ReleaseID, d.Progress, bigCustom.ID, want)
		}
		if d.DeviceName != "" {
			t.Fatalf("device name %q: a lone agent's recorder has no name in the config, the server shows the serial", d.DeviceName)
		}
		if d.StateAt(time.Now()) != fleet.StateUpdating {
			t.Fatalf("state %s, want updating", d.StateAt(time.Now()))
		}
	})

	t.Run("once installed the device is idle and shows no progress", func(t *testing.T) {
		if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
			t.Fatalf("%s (%s), want the resumed download installed", out.Result, out.Message)
		}
		d := fleetDevice(t, f)
		if d.Step != string(journal.StepIdle) || d.Progress != 0 || d.Site != "warehouse-north" || d.LastResult != fleet.ResultInstalled {
			t.Fatalf("fleet device: step %q, progress %d, site %q, last %q; want idle, 0, warehouse-north, installed", d.Step, d.Progress, d.Site, d.LastResult)
		}
	})

	t.Run("without fleet.site the check-in names no site, not the host name", func(t *testing.T) {
		w.agent.Config.Fleet.Site = ""
		if out := w.cycle(t, agent.ModeUpdate); out.Result == agent.ResultFailed {
			t.Fatalf("%s (%s)", out.Result, out.Message)
		}
		if d := fleetDevice(t, f); d.Site != "" {
			t.Fatalf("site %q, want none", d.Site)
		}
	})
}

// A site's recorders check in under their names from devices:, with the
// site's fleet.site.
func TestASitesRecordersCheckInUnderTheirNames(t *testing.T) {
	f := startFleet(t)
	w := newSite(t, lab.Options{
		Releases: []lab.Release{custom4125},
		Site: []lab.SiteDevice{
			{Name: "hall", Device: nvrsim.Config{Model: protected, Firmware: "V4.1.25", Serial: "NVR-HALL"}},
			{Name: "yard", Device: nvrsim.Config{Model: protected, Firmware: "V4.1.25", Serial: "NVR-YARD"}},
		},
		ExtraYAML: "fleet:\n  url: " + f.url + "\n  site: depot-7\n",
	})
	for name, o := range w.cycle(t, agent.ModeUpdate) {
		if o.Result == agent.ResultFailed {
			t.Fatalf("%s: %s (%s)", name, o.Result, o.Message)
		}
	}
	ds, err := f.store.Devices(context.Background(), fleet.DeviceFilter{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Serial+" "+d.Site+"/"+d.DeviceName)
	}
	slices.Sort(got)
	if want := []string{"NVR-HALL depot-7/hall", "NVR-YARD depot-7/yard"}; !slices.Equal(got, want) {
		t.Fatalf("fleet devices %q, want %q", got, want)
	}
}

// An idle agent with the default config (poll.interval 6h, poll.jitter
// 30m, fleet.checkin_interval 1h) checks in at its polls: the real daemon,
// on a simulated clock with the longest jitter, against a real fleet
// server. Between two check-ins the server must not show it stale, with
// its own interval and with a longer one the server asks for.
func TestAnIdleAgentIsNotStaleBeforeItsNextCheckIn(t *testing.T) {
	def := config.Default()
	longest := def.Poll.Interval + def.Poll.Jitter
	for _, c := range []struct {
		name   string
		server time.Duration // fwctl fleet serve --checkin-interval
		polls  int
	}{
		{"with the agent's own interval", 0, 4},
		{"with a day the server asks for", 24 * time.Hour, 8},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := startFleet(t, server.Options{Enrolment: server.EnrolOpen, CheckInInterval: c.server})
			w := newWorld(t, lab.Options{Device: nvrsim.Config{Firmware: "V4.1.25"}, Releases: []lab.Release{custom4125}})
			w.linkFleet(t, f, func(cfg *config.Config) {
				cfg.Poll, cfg.Fleet.CheckInInterval = def.Poll, def.Fleet.CheckInInterval
			})
			clock := time.Now()
			w.agent.Now = func() time.Time { return clock }
			w.agent.Jitter = func(max time.Duration) time.Duration { return max - time.Nanosecond }

			var last fleet.Device // as the server stored the last check-in
			var lastAt time.Time  // on the agent's clock
			checkIns := 0
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sleeps := 0
			w.agent.After = func(d time.Duration) <-chan time.Time {
				sleeps++
				if d != longest-time.Nanosecond {
					t.Errorf("poll %d: the daemon slept %s, want the whole %s", sleeps, d, longest-time.Nanosecond)
				}
				if dev := fleetDevice(t, f); dev.CheckInSeq != last.CheckInSeq {
					if checkIns > 0 {
						// The server's view at the moment of this check-in,
						// had the gap passed on its clock too.
						gap := clock.Sub(lastAt)
						if st := last.StateAt(last.LastSeen.Add(gap)); st == fleet.StateStale {
							t.Errorf("check-in %d came %s after the one before, which announced %ds: the server showed the device stale in between",
								checkIns+1, gap, last.IntervalSeconds)
						}
					}
					checkIns++
					last, lastAt = dev, clock
					t.Logf("poll %d: check-in %d announcing %s", sleeps, checkIns, time.Duration(dev.IntervalSeconds)*time.Second)
				}
				if sleeps == c.polls {
					cancel()
					return nil // never fires: Run must notice the cancelled context
				}
				clock = clock.Add(d)
				ch := make(chan time.Time, 1)
				ch <- clock
				return ch
			}
			if err := w.agent.Run(ctx); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if checkIns < 2 {
				t.Fatalf("%d check-ins in %d polls: an idle agent checks in at its polls", checkIns, c.polls)
			}
			if st := last.StateAt(last.LastSeen.Add(longest)); st != fleet.StateUpToDate {
				t.Fatalf("state %s one poll after the last check-in, want up_to_date", st)
			}
		})
	}
}

// A recorder whose firmware string is longer than the fleet protocol
// allows (fleet.MaxShortLen) or holds a control character still checks
// in, and the report of its cycle is stored, not set aside in rejected/:
// the agent fits the copy it sends to the server, and decides on what the
// recorder really reports (a string it cannot read: refused, as ever).
func TestARecorderWithAnOddFirmwareStringStillChecksIn(t *testing.T) {
	long := "V4.1.20_230619_integrator-custom-edition_for-iDS-9632NXI-I8-16S_rev7"
	if len(long) <= fleet.MaxShortLen {
		t.Fatalf("the firmware string is %d bytes: make it longer than the limit %d", len(long), fleet.MaxShortLen)
	}
	for _, c := range []struct {
		name, firmware, shown, inMessage string
	}{
		{"a firmware string over the limit", long, long[:fleet.MaxShortLen-3] + fleet.FitCut, long},
		// The refusal's message quotes the string, escaped (%q).
		{"a firmware string with a C1 control character", "V4.1.20\u009b2J", "V4.1.20?2J", `"V4.1.20\u009b2J"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			f := startFleet(t)
			w := newWorld(t, lab.Options{Device: nvrsim.Config{Firmware: c.firmware}, Releases: []lab.Release{custom4125}})
			w.linkFleet(t, f)

			out := w.cycle(t, agent.ModeUpdateNow)
			if out.Identity == nil || out.Identity.FirmwareVersion != c.firmware {
				t.Fatalf("identity %+v: the agent must decide on the firmware string the recorder reports, %q", out.Identity, c.firmware)
			}
			if out.Result != agent.ResultRefused || !slices.Contains(out.Codes, string(verify.CodeVersionUnparseable)) {
				t.Fatalf("%s %v (%s), want refused with %s", out.Result, out.Codes, out.Message, verify.CodeVersionUnparseable)
			}
			if d := fleetDevice(t, f); d.Firmware != c.shown || d.Serial != out.Identity.Serial {
				t.Fatalf("fleet device %s shows firmware %q, want %q", d.Serial, d.Firmware, c.shown)
			}

			w.agent.FlushReports(ctx)
			if rejected, _ := filepath.Glob(filepath.Join(w.lab.StateDir, "reports", "rejected", "*")); len(rejected) != 0 {
				t.Fatalf("reports set aside as rejected: %v", rejected)
			}
			if n := w.agent.Reports.Len(); n != 0 {
				t.Fatalf("%d reports still queued", n)
			}
			recs := delivered(t, f.store, custom4125.ID)
			if len(recs) != 1 {
				t.Fatalf("the server stored %d reports, want the refusal", len(recs))
			}
			r := recs[0].Report
			if r.Result != fleet.ResultRefused || r.FirmwareVersion != c.shown || !strings.Contains(r.Message, c.inMessage) {
				t.Fatalf("stored report: result %q, firmware_version %q, message %q; want refused, %q, a message with %q",
					r.Result, r.FirmwareVersion, r.Message, c.shown, c.inMessage)
			}
		})
	}
}
