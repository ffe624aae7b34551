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
