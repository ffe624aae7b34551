package nvrsim

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/testimage"
)

func TestStorageListsTheDisksWithFaultsApplied(t *testing.T) {
	srv := start(t, Config{Namespace: "hikvision", Disks: []Disk{{Status: "ok"}, {Status: "idle"}, {Status: "sleeping"}}})
	srv.SetFaults(Faults{DiskStatus: map[string]string{"2": "formating"}})
	c := client(testUser, testPassword)
	status, body := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/ContentMgmt/Storage")
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var doc Storage
	if err := xml.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, d := range doc.HDDs {
		got = append(got, d.Status)
	}
	if strings.Join(got, ",") != "ok,formating,sleeping" || doc.HDDs[1].ID != 2 || doc.HDDs[0].Property != "RW" {
		t.Errorf("disks %+v, want ok,formating,sleeping", doc.HDDs)
	}
	if !strings.Contains(string(body), Namespaces["hikvision"]) {
		t.Errorf("reply lacks the namespace:\n%s", body)
	}
	status, body = do(t, c, http.MethodGet, srv.URL()+"/ISAPI/ContentMgmt/Storage/hdd")
	if status != http.StatusOK || !bytes.Contains(body, []byte("<hddList")) {
		t.Errorf("Storage/hdd: %d %s", status, body)
	}
	if st := srv.State(); st.Disks[1].Status != "formating" {
		t.Errorf("state disks %+v, want the fault shown", st.Disks)
	}
}

func TestChannelsComeBackAfterAFlashExceptTheLostOnes(t *testing.T) {
	srv := start(t, Config{Model: "DS-7608NI-K2", Channels: 8, ChannelReturnDelay: 30 * time.Millisecond})
	srv.SetFaults(Faults{ChannelsLostAfterFlash: 2, DiskStatusAfterFlash: map[string]string{"2": "error"}})
	c := client(testUser, testPassword)
	if st := srv.State(); len(st.Channels) != 8 || !st.Channels[7].Online {
		t.Fatalf("channels at start %+v, want 8 online", st.Channels)
	}
	res, err := putImage(c, srv.URL(), image(t, testimage.Spec{Model: "DS-7608NI-K2", Version: "4.62.300", Variant: "standard"}))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	waitFor(t, srv.Sim, "the flash", func(s State) bool { return s.Pending != nil })
	status, _ := do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot")
	if status != http.StatusOK {
		t.Fatalf("reboot: %d", status)
	}
	st := waitFor(t, srv.Sim, "six channels back", func(s State) bool {
		n := 0
		for _, ch := range s.Channels {
			if ch.Online {
				n++
			}
		}
		return !s.Rebooting && n == 6
	})
	for _, ch := range st.Channels {
		if want := ch.ID <= 6; ch.Online != want || ch.Lost == want {
			t.Errorf("channel %+v: want online=%v", ch, want)
		}
	}
	if st.Disks[1].Status != "error" || st.Disks[0].Status != "ok" {
		t.Errorf("disks %+v, want disk 2 in error after the flash", st.Disks)
	}
	_, body := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/ContentMgmt/InputProxy/channels/status")
	var list ChannelStatusList
	if err := xml.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Channels) != 8 || list.Channels[6].Online || !list.Channels[5].Online {
		t.Errorf("channel status %+v", list.Channels)
	}
}

func TestARebootWithoutFlashBringsEveryChannelBack(t *testing.T) {
	srv := start(t, Config{Channels: 4})
	srv.SetFaults(Faults{ChannelsLostAfterFlash: 2})
	c := client(testUser, testPassword)
	if status, _ := do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot"); status != http.StatusOK {
		t.Fatalf("reboot: %d", status)
	}
	st := waitFor(t, srv.Sim, "the reboot", func(s State) bool { return !s.Rebooting && s.Reboots == 1 })
	for _, ch := range st.Channels {
		if !ch.Online {
			t.Errorf("channel %+v offline after a plain reboot", ch)
		}
	}
}

func TestARecorderWithoutIPChannelsAnswersNotSupport(t *testing.T) {
	srv := start(t, Config{Channels: -1})
	status, body := do(t, client(testUser, testPassword), http.MethodGet, srv.URL()+"/ISAPI/ContentMgmt/InputProxy/channels/status")
	rs := xmlStatus(t, body)
	if status != http.StatusForbidden || rs.StatusCode != 4 || rs.SubStatusCode != "notSupport" {
		t.Errorf("got %d %+v, want 403 statusCode 4 notSupport", status, rs)
	}
}

func TestConfigurationExport(t *testing.T) {
	srv := start(t, Config{Serial: "CFG1", ConfigSize: 100000})
	c := client(testUser, testPassword)
	t.Run("the export is the opaque file, every byte", func(t *testing.T) {
		res, err := c.Get(srv.URL() + "/ISAPI/System/configurationData")
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, res)
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/octet-stream" || len(b) != 100000 || !bytes.Equal(b, srv.ConfigFile()) {
			t.Errorf("status %d, type %q, %d bytes", res.StatusCode, res.Header.Get("Content-Type"), len(b))
		}
		if !bytes.HasPrefix(b, []byte(ConfigMarker+"CFG1")) {
			t.Errorf("the file does not start with the marker: %q", b[:40])
		}
		waitFor(t, srv.Sim, "the export counted", func(s State) bool { return s.ConfigExports == 1 })
	})
	t.Run("a failing export answers 500", func(t *testing.T) {
		srv.SetFaults(Faults{ExportFails: true})
		if status, _ := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/configurationData"); status != 500 {
			t.Errorf("status %d, want 500", status)
		}
	})
	t.Run("an unsupported export answers notSupport", func(t *testing.T) {
		srv.SetFaults(Faults{ExportNotSupported: true})
		status, body := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/configurationData")
		if rs := xmlStatus(t, body); status != 403 || rs.SubStatusCode != "notSupport" {
			t.Errorf("got %d %+v", status, rs)
		}
	})
}

func TestOldFirmwareLacksTheHealthAndBackupEndpoints(t *testing.T) {
	srv := start(t, Config{OldFirmware: true})
	c := client(testUser, testPassword)
	for _, p := range []string{"/ISAPI/ContentMgmt/Storage", "/ISAPI/ContentMgmt/Storage/hdd", "/ISAPI/ContentMgmt/InputProxy/channels/status", "/ISAPI/System/configurationData"} {
		status, body := do(t, c, http.MethodGet, srv.URL()+p)
		if rs := xmlStatus(t, body); status != 404 || rs.SubStatusCode != "notSupport" {
			t.Errorf("%s: %d %+v, want 404 notSupport", p, status, rs)
		}
	}
	if status, _ := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo"); status != 200 {
		t.Errorf("deviceInfo: %d", status)
	}
}

func TestHealthFaultsRoundTripThroughDebugFaults(t *testing.T) {
	srv := start(t, Config{})
	body := `{"disk_status":{"1":"formating"},"channels_lost_after_flash":2,"export_fails":true,"export_not_supported":false,"disk_status_after_flash":{"2":"error"}}`
	req, _ := http.NewRequest(http.MethodPut, srv.URL()+"/debug/faults", strings.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	f := srv.Faults()
	if f.DiskStatus["1"] != "formating" || f.ChannelsLostAfterFlash != 2 || !f.ExportFails || f.DiskStatusAfterFlash["2"] != "error" {
		t.Errorf("faults %+v", f)
	}
	// The copy shares nothing with the simulator.
	f.DiskStatus["1"] = "ok"
	if srv.Faults().DiskStatus["1"] != "formating" {
		t.Error("changing a copy of the faults changed the simulator")
	}
}
