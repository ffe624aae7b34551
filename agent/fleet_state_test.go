package agent_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fwagent/fwagent/agent"
	"github.com/fwagent/fwagent/device/isapi"
	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/internal/lab"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
)

// fleetDevice is the only device the fleet server knows, as it stands now.
func fleetDevice(t *testing.T, f *fleetServer) fleet.Device {
	t.Helper()
	ds, err := f.store.Devices(context.Background(), fleet.DeviceFilter{Now: time.Now()})
	if err != nil || len(ds) != 1 {
		t.Fatalf("devices %+v (%v), want one", ds, err)
	}
	return ds[0]
}

func TestARecorderHoldingAForeignImageShowsAsPendingImageInTheFleet(t *testing.T) {
	// As TestAPendingImageTheAgentDidNotSendIsNeverRebootedInto: a
	// technician flashed an image through the web UI and did not reboot.
	const model = "iDS-9632NXI-I8/S"
	f := startFleet(t)
	w := newWorld(t, lab.Options{
		Device:   nvrsim.Config{Model: model, Firmware: "V4.1.20"},
		Releases: []lab.Release{{ID: "s-4.1.30", Models: []string{model}, Version: "4.1.30", Variant: "standard"}},
	})
	w.linkFleet(t, f)
	theirs := filepath.Join(t.TempDir(), "theirs.dav")
	if _, _, err := testimage.WriteFile(theirs, testimage.Spec{Model: model, Version: "4.1.28", Variant: "standard"}); err != nil {
		t.Fatal(err)
	}
	sc := w.lab.Sim.Config()
	ic := w.agent.Config.Device.ISAPI
	tech, err := isapi.New(isapi.Config{BaseURL: w.lab.Sim.URL(), Username: sc.User, Password: sc.Password, PollInterval: time.Millisecond,
		RequestTimeout: ic.RequestTimeout, UploadTimeout: ic.UploadTimeout, FlashTimeout: ic.FlashTimeout, RebootTimeout: ic.RebootTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := tech.Install(waitCtx(t), theirs, nil); err != nil {
		t.Fatal(err)
	}
	out := w.cycle(t, agent.ModeUpdateNow)
	if out.Result != agent.ResultFailed || !hasCode(out, agent.CodePendingImage) {
		t.Fatalf("%s %v (%s), want a failure with pending_image", out.Result, out.Codes, out.Message)
	}
	d := fleetDevice(t, f)
	if d.Stored != fleet.StatePendingImage || d.LastCode != agent.CodePendingImage || d.LastResult != fleet.ResultFailed {
		t.Fatalf("fleet device: state %s, last %s/%s; want pending_image after the failed attempt", d.Stored, d.LastResult, d.LastCode)
	}
}

func TestARecorderThatDoesNotAnswerStillChecksInWithItsLastIdentity(t *testing.T) {
	t.Run("with no identity known yet nothing is sent", func(t *testing.T) {
		f := startFleet(t)
		w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
		w.linkFleet(t, f)
		w.fast(t, 0)
		_ = w.lab.Sim.Close()
		if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultFailed {
			t.Fatalf("%s (%s), want failed: the recorder is gone", out.Result, out.Message)
		}
		if ds, err := f.store.Devices(context.Background(), fleet.DeviceFilter{Now: time.Now()}); err != nil || len(ds) != 0 {
			t.Fatalf("devices %+v (%v): a check-in without a serial was sent", ds, err)
		}
	})

	f := startFleet(t)
	w := newWorld(t, lab.Options{Releases: []lab.Release{custom4125}})
	w.linkFleet(t, f)
	w.fast(t, 0)
	if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultInstalled {
		t.Fatalf("%s (%s), want installed", out.Result, out.Message)
	}
	before := fleetDevice(t, f)
	if before.Stored != fleet.StateUpToDate {
		t.Fatalf("state %s after the install, want up_to_date", before.Stored)
	}
	_ = w.lab.Sim.Close() // the recorder no longer answers

	t.Run("at most every interval", func(t *testing.T) {
		w.agent.Config.Fleet.CheckInInterval = time.Hour
		if out := w.cycle(t, agent.ModeUpdateNow); out.Result != agent.ResultFailed {
			t.Fatalf("%s (%s), want failed", out.Result, out.Message)
		}
		if d := fleetDevice(t, f); d.CheckInSeq != before.CheckInSeq || d.Stored != fleet.StateUpToDate {
			t.Fatalf("seq %d -> %d, state %s: a check-in was sent within the interval", before.CheckInSeq, d.CheckInSeq, d.Stored)
		}
	})

	t.Run("the server shows it failed with the recorder's code, not stale", func(t *testing.T) {
		w.agent.Config.Fleet.CheckInInterval = time.Nanosecond
		out := w.cycle(t, agent.ModeUpdateNow)
		if out.Result != agent.ResultFailed || len(out.Codes) == 0 {
			t.Fatalf("%s %v (%s), want failed with a code", out.Result, out.Codes, out.Message)
		}
		d := fleetDevice(t, f)
		if d.CheckInSeq <= before.CheckInSeq {
			t.Fatalf("no check-in for a recorder that does not answer (seq %d)", d.CheckInSeq)
		}
		if d.StateAt(time.Now()) != fleet.StateFailed || d.LastResult != fleet.ResultFailed || d.LastCode != out.Codes[0] {
			t.Fatalf("state %s, last %s/%s; want failed with %s", d.StateAt(time.Now()), d.LastResult, d.LastCode, out.Codes[0])
		}
		if d.Serial != before.Serial || d.Model != before.Model || d.Firmware != before.Firmware || d.Firmware == "" {
			t.Fatalf("identity %s/%s/%s, want the last known %s/%s/%s", d.Serial, d.Model, d.Firmware, before.Serial, before.Model, before.Firmware)
		}
		if d.Step != "" && d.Step != "idle" {
			t.Fatalf("step %q: nothing is under way while the recorder does not answer", d.Step)
		}
	})
}
