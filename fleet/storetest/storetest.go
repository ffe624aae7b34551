// Package storetest is the one test suite every fleet.Store runs:
// fleet/sqlite and fleet/postgres call Run with a constructor of fresh,
// empty stores.
package storetest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent/report"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/manifest"
)

// Run runs the suite; open returns a fresh, empty store (closed by the
// test's cleanup).
func Run(t *testing.T, open func(t *testing.T) fleet.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s fleet.Store)
	}{
		{"devices round-trip through PutDevices and DevicesForUpdate", testDeviceRoundTrip},
		{"a failed update function stores nothing", testRollback},
		{"the device list filters by state, model and release", testFilters},
		{"a device without check-ins for three intervals counts as stale", testStale},
		{"reports come back per release in receive order", testReports},
		{"an imported report is stored once per report id", testImportOnce},
		{"counters add up", testCounters},
		{"releases, pauses and the pause log round-trip", testReleases},
		{"events come back newest first", testEvents},
		{"concurrent updates of one device never lose a sequence number", testConcurrentUpdates},
		{"a batch of thousands of devices is stored in one transaction", testBigBatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func device(serial string, mutate ...func(*fleet.Device)) *fleet.Device {
	pub, _, _ := ed25519.GenerateKey(nil)
	d := &fleet.Device{Serial: serial, Enrolment: fleet.EnrolAccepted, PubKey: pub, KeyID: fleet.KeyID(pub)}
	d.Apply(fleet.CheckIn{Seq: 1, Time: t0, Serial: serial, Model: "iDS-9632NXI-I8/16S", Firmware: "V4.1.25",
		AgentVersion: "1.0", IntervalSeconds: 3600, Groups: []string{"pilot"}}, t0)
	for _, m := range mutate {
		m(d)
	}
	d.Refresh()
	return d
}

func put(t *testing.T, s fleet.Store, ds ...*fleet.Device) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx fleet.Tx) error { return tx.PutDevices(context.Background(), ds) }); err != nil {
		t.Fatal(err)
	}
}

func testDeviceRoundTrip(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	want := device("SN1", func(d *fleet.Device) { d.ManifestSerial, d.CheckInSeq, d.ReportSeq = 7, 1<<60, 42 })
	put(t, s, want)
	var got map[string]*fleet.Device
	if err := s.Update(ctx, func(tx fleet.Tx) (err error) {
		got, err = tx.DevicesForUpdate(ctx, []string{"SN1", "SN-unknown"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !reflect.DeepEqual(got["SN1"], want) {
		t.Fatalf("DevicesForUpdate = %+v, want only %+v", got["SN1"], want)
	}
	one, err := s.Device(ctx, "SN1")
	if err != nil || !reflect.DeepEqual(&one, want) {
		t.Fatalf("Device = %+v, %v", one, err)
	}
	if _, err := s.Device(ctx, "nope"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("Device(nope) = %v, want ErrNotFound", err)
	}
	// Replace: an upsert keeps one row.
	want.Firmware = "V4.1.26"
	put(t, s, want)
	all, err := s.Devices(ctx, fleet.DeviceFilter{Now: t0})
	if err != nil || len(all) != 1 || all[0].Firmware != "V4.1.26" {
		t.Fatalf("Devices = %+v, %v", all, err)
	}
}

func testRollback(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx fleet.Tx) error {
		if err := tx.PutDevices(ctx, []*fleet.Device{device("SN1")}); err != nil {
			return err
		}
		if err := tx.AddCounters(ctx, map[string]int64{fleet.CounterForged: 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if ds, _ := s.Devices(ctx, fleet.DeviceFilter{Now: t0}); len(ds) != 0 {
		t.Fatalf("devices after a rolled back update: %v", ds)
	}
	if c, _ := s.Counters(ctx); c[fleet.CounterForged] != 0 {
		t.Fatalf("counters after a rolled back update: %v", c)
	}
}

func serials(ds []fleet.Device) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Serial)
	}
	return out
}

func testFilters(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	put(t, s,
		device("A", func(d *fleet.Device) { d.Step, d.ReleaseID = "download", "r1" }),
		device("B", func(d *fleet.Device) { d.LastResult, d.LastReleaseID = fleet.ResultFailed, "r1" }),
		device("C", func(d *fleet.Device) { d.Model = "other" }),
		device("D", func(d *fleet.Device) { d.Step = fleet.StepPendingImage }),
		&fleet.Device{Serial: "E", Enrolment: fleet.EnrolRegistered, Stored: fleet.StateNeverSeen},
		device("F", func(d *fleet.Device) { d.Enrolment = fleet.EnrolPending }),
	)
	cases := []struct {
		f    fleet.DeviceFilter
		want []string
	}{
		{fleet.DeviceFilter{}, []string{"A", "B", "C", "D", "E", "F"}},
		{fleet.DeviceFilter{State: fleet.StateUpdating}, []string{"A"}},
		{fleet.DeviceFilter{State: fleet.StateFailed}, []string{"B"}},
		{fleet.DeviceFilter{State: fleet.StateUpToDate}, []string{"C"}},
		{fleet.DeviceFilter{State: fleet.StatePendingImage}, []string{"D"}},
		{fleet.DeviceFilter{State: fleet.StateNeverSeen}, []string{"E"}},
		{fleet.DeviceFilter{State: fleet.StatePendingEnrolment}, []string{"F"}},
		{fleet.DeviceFilter{Model: "other"}, []string{"C"}},
		{fleet.DeviceFilter{ReleaseID: "r1"}, []string{"A", "B"}},
		{fleet.DeviceFilter{ReleaseID: "r1", State: fleet.StateFailed}, []string{"B"}},
		{fleet.DeviceFilter{Limit: 2}, []string{"A", "B"}},
	}
	for _, c := range cases {
		c.f.Now = t0.Add(time.Minute)
		got, err := s.Devices(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(serials(got), c.want) {
			t.Errorf("Devices(%+v) = %v, want %v", c.f, serials(got), c.want)
		}
	}
	counts, err := s.StateCounts(ctx, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := map[fleet.State]int{fleet.StateUpdating: 1, fleet.StateFailed: 1, fleet.StateUpToDate: 1, fleet.StatePendingImage: 1, fleet.StateNeverSeen: 1, fleet.StatePendingEnrolment: 1}
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("StateCounts = %v, want %v", counts, want)
	}
}

func testStale(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	put(t, s, device("A"), device("B", func(d *fleet.Device) { d.LastResult = fleet.ResultFailed }))
	later := t0.Add(3*time.Hour + time.Second)
	got, err := s.Devices(ctx, fleet.DeviceFilter{State: fleet.StateStale, Now: later})
	if err != nil || !reflect.DeepEqual(serials(got), []string{"A", "B"}) {
		t.Fatalf("stale devices = %v, %v", serials(got), err)
	}
	if got, _ := s.Devices(ctx, fleet.DeviceFilter{State: fleet.StateFailed, Now: later}); len(got) != 0 {
		t.Fatalf("a stale device still listed as failed: %v", serials(got))
	}
	if got, _ := s.Devices(ctx, fleet.DeviceFilter{State: fleet.StateStale, Now: t0.Add(3 * time.Hour)}); len(got) != 0 {
		t.Fatalf("stale at exactly three intervals: %v", serials(got))
	}
	counts, _ := s.StateCounts(ctx, later)
	if counts[fleet.StateStale] != 2 {
		t.Fatalf("StateCounts = %v, want 2 stale", counts)
	}
	d, _ := s.Device(ctx, "A")
	if d.StateAt(later) != fleet.StateStale {
		t.Fatalf("StateAt = %s", d.StateAt(later))
	}
}

func testReports(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	var recs []fleet.ReportRecord
	for i := 0; i < 5; i++ {
		rel := "r1"
		if i == 2 {
			rel = "r2"
		}
		recs = append(recs, fleet.ReportRecord{Received: t0.Add(time.Duration(i) * time.Second), KeyID: "k",
			Report: fleet.Report{Seq: uint64(i + 1), Report: report.Report{ID: fmt.Sprint("id", i), Time: t0, DeviceSerial: "SN1", ReleaseID: rel, Step: "install", Codes: []string{"x"}}}})
	}
	// Some come encoded already, as the server sends them; the others
	// the store encodes. Both read back alike, without Body.
	stored := slices.Clone(recs)
	for i := 1; i < len(stored); i += 2 {
		body, err := json.Marshal(stored[i].Report)
		if err != nil {
			t.Fatal(err)
		}
		stored[i].Body = body
	}
	if err := s.Update(ctx, func(tx fleet.Tx) error { return tx.AddReports(ctx, stored) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.Reports(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := []fleet.ReportRecord{recs[0], recs[1], recs[3], recs[4]}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Reports(r1) = %+v\nwant %+v", got, want)
	}
	ids, err := s.ReportedReleases(ctx)
	if err != nil || !reflect.DeepEqual(ids, []string{"r1", "r2"}) {
		t.Fatalf("ReportedReleases = %v, %v", ids, err)
	}
}

func testImportOnce(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	rec := func(id, serial string) fleet.ReportRecord {
		return fleet.ReportRecord{Received: t0, KeyID: "whatever the caller says",
			Report: fleet.Report{Report: report.Report{ID: id, Time: t0, DeviceSerial: serial, ReleaseID: "r1", Step: "confirm", Result: fleet.ResultInstalled}}}
	}
	imports := func(rs ...fleet.ReportRecord) int {
		t.Helper()
		var n int
		if err := s.Update(ctx, func(tx fleet.Tx) (err error) {
			n, err = tx.ImportReports(ctx, rs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := imports(rec("a", "SN1"), rec("b", "SN2"), rec("b", "SN2")); n != 2 {
		t.Fatalf("the first import stored %d reports, want 2 (a, and b once)", n)
	}
	// The same file again, with one new report; a report id counts
	// whatever the serial, as in the reports file.
	if n := imports(rec("a", "SN1"), rec("b", "SN9"), rec("c", "SN3")); n != 1 {
		t.Fatalf("the second import stored %d reports, want 1 (c)", n)
	}
	// An agent's report is no import: its id does not collide.
	if err := s.Update(ctx, func(tx fleet.Tx) error {
		r := rec("a", "SN1")
		r.KeyID, r.Report.Seq = "k", 1
		return tx.AddReports(ctx, []fleet.ReportRecord{r})
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Reports(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, r := range got {
		summary = append(summary, r.Report.ID+"/"+r.Report.DeviceSerial+"/"+r.KeyID)
	}
	want := []string{"a/SN1/" + fleet.ImportKeyID, "b/SN2/" + fleet.ImportKeyID, "c/SN3/" + fleet.ImportKeyID, "a/SN1/k"}
	if !reflect.DeepEqual(summary, want) {
		t.Fatalf("Reports(r1) = %v, want %v", summary, want)
	}
}

func testCounters(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := s.Update(ctx, func(tx fleet.Tx) error {
			return tx.AddCounters(ctx, map[string]int64{fleet.CounterForged: 1, fleet.CounterReplayed: 2})
		}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Counters(ctx)
	if err != nil || c[fleet.CounterForged] != 3 || c[fleet.CounterReplayed] != 6 {
		t.Fatalf("Counters = %v, %v", c, err)
	}
}

func testReleases(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	ro := &manifest.Rollout{ID: "r1", Stages: []manifest.Stage{{At: t0, Percent: 10}, {At: t0.Add(time.Hour), Percent: 100}}}
	err := s.Update(ctx, func(tx fleet.Tx) error {
		if _, err := tx.ReleaseForUpdate(ctx, "r1"); !errors.Is(err, fleet.ErrNotFound) {
			return fmt.Errorf("ReleaseForUpdate of a new release = %v, want ErrNotFound", err)
		}
		if err := tx.PutRelease(ctx, fleet.Release{ID: "r1", Rollout: ro}); err != nil {
			return err
		}
		if err := tx.PutRelease(ctx, fleet.Release{ID: "r2", Paused: true, PausedAt: t0, PausedBy: "admin", PauseCause: "looks bad"}); err != nil {
			return err
		}
		if err := tx.AddPause(ctx, fleet.PauseEvent{At: t0, ReleaseID: "r2", Paused: true, Actor: "admin", Cause: "looks bad"}); err != nil {
			return err
		}
		return tx.AddPause(ctx, fleet.PauseEvent{At: t0.Add(time.Second), ReleaseID: "r2", Paused: false, Actor: "admin", Cause: "fixed"})
	})
	if err != nil {
		t.Fatal(err)
	}
	rels, err := s.Releases(ctx)
	if err != nil || len(rels) != 2 || !reflect.DeepEqual(rels[0].Rollout, ro) || !rels[1].Paused || rels[1].PausedBy != "admin" || !rels[1].PausedAt.Equal(t0) {
		t.Fatalf("Releases = %+v, %v", rels, err)
	}
	held, err := s.Held(ctx)
	if err != nil || len(held) != 1 || held[0].ID != "r2" {
		t.Fatalf("Held = %+v, %v", held, err)
	}
	log, err := s.Pauses(ctx, "r2", 10)
	if err != nil || len(log) != 2 || log[0].Paused || !log[1].Paused || log[1].Cause != "looks bad" {
		t.Fatalf("Pauses = %+v, %v", log, err)
	}
	if err := s.Update(ctx, func(tx fleet.Tx) error {
		r, err := tx.ReleaseForUpdate(ctx, "r2")
		if err != nil {
			return err
		}
		r.Paused = false
		return tx.PutRelease(ctx, r)
	}); err != nil {
		t.Fatal(err)
	}
	if held, _ := s.Held(ctx); len(held) != 0 {
		t.Fatalf("Held after resume = %+v", held)
	}
}

func testEvents(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx fleet.Tx) error {
		return tx.AddEvents(ctx, []fleet.Event{
			{At: t0, Serial: "A", Kind: fleet.EventEnrolled, Detail: "first"},
			{At: t0.Add(time.Second), Serial: "B", Kind: fleet.EventForged, Detail: "other key"},
			{At: t0.Add(2 * time.Second), Serial: "A", Kind: fleet.EventReport, Detail: "second"},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Events(ctx, "A", 10)
	if err != nil || len(got) != 2 || got[0].Detail != "second" || got[1].Detail != "first" || !got[1].At.Equal(t0) {
		t.Fatalf("Events(A) = %+v, %v", got, err)
	}
	all, _ := s.Events(ctx, "", 2)
	if len(all) != 2 || all[0].Detail != "second" {
		t.Fatalf("Events(all, 2) = %+v", all)
	}
}

// testConcurrentUpdates: each update reads the device's sequence, adds one
// and writes it back; with rows locked for the transaction no increment
// is lost.
func testConcurrentUpdates(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	put(t, s, device("SN1"))
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.Update(ctx, func(tx fleet.Tx) error {
					ds, err := tx.DevicesForUpdate(ctx, []string{"SN1"})
					if err != nil {
						return err
					}
					d := ds["SN1"]
					d.ReportSeq++
					return tx.PutDevices(ctx, []*fleet.Device{d})
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	d, _ := s.Device(ctx, "SN1")
	if d.ReportSeq != workers*each {
		t.Fatalf("ReportSeq = %d after %d increments", d.ReportSeq, workers*each)
	}
}

func testBigBatch(t *testing.T, s fleet.Store) {
	ctx := context.Background()
	var ds []*fleet.Device
	var names []string
	for i := 0; i < 3000; i++ {
		n := fmt.Sprintf("SN%05d", i)
		ds = append(ds, device(n))
		names = append(names, n)
	}
	put(t, s, ds...)
	var got map[string]*fleet.Device
	if err := s.Update(ctx, func(tx fleet.Tx) (err error) {
		got, err = tx.DevicesForUpdate(ctx, names)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3000 {
		t.Fatalf("DevicesForUpdate returned %d of 3000", len(got))
	}
}
