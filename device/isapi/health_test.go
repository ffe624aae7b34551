package isapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
)

const storageXML = `<?xml version="1.0" encoding="UTF-8"?>
<storage version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<hddList size="8">
<hdd version="2.0"><id>1</id><hddName>hdd1</hddName><hddPath></hddPath><hddType>SATA</hddType><status>ok</status><capacity>3815447</capacity><freeSpace>0</freeSpace><property>RW</property></hdd>
<hdd version="2.0"><id>2</id><hddName>hdd2</hddName><hddType>SATA</hddType><status>formating</status><capacity>1907729</capacity><freeSpace>1907729</freeSpace><property>RW</property></hdd>
<hdd version="2.0"><id>3</id><hddName>hdd3</hddName><status>Brand-New-State</status></hdd>
</hddList>
<nasList size="8"><nas><id>9</id><addressingFormatType>ipaddress</addressingFormatType><ipAddress>10.0.0.5</ipAddress><path>/share</path><status>offline</status><capacity>100</capacity></nas></nasList>
</storage>`

const channelsXML = `<?xml version="1.0" encoding="UTF-8"?>
<InputProxyChannelStatusList xmlns="urn:psialliance-org" version="2.0">
<InputProxyChannelStatus><id>1</id><sourceInputPortDescriptor><proxyProtocol>HIKVISION</proxyProtocol><ipAddress>192.168.254.2</ipAddress><online>true</online></sourceInputPortDescriptor><online>true</online><chanDetectResult>connect</chanDetectResult></InputProxyChannelStatus>
<InputProxyChannelStatus><id>2</id><sourceInputPortDescriptor><ipAddress>192.168.254.3</ipAddress></sourceInputPortDescriptor><online>false</online><chanDetectResult>NETWORK_FAIL</chanDetectResult></InputProxyChannelStatus>
<InputProxyChannelStatus><id>3</id><online>TRUE</online></InputProxyChannelStatus>
</InputProxyChannelStatusList>`

func TestParseStorage(t *testing.T) {
	disks, err := parseStorage([]byte(storageXML))
	if err != nil {
		t.Fatal(err)
	}
	want := []device.Disk{
		{ID: "1", Name: "hdd1", Kind: "hdd", Status: "ok", CapacityMB: 3815447, Property: "RW"},
		{ID: "2", Name: "hdd2", Kind: "hdd", Status: "formating", CapacityMB: 1907729, FreeMB: 1907729, Property: "RW"},
		{ID: "3", Name: "hdd3", Kind: "hdd", Status: "Brand-New-State"},
		{ID: "9", Kind: "nas", Status: "offline", CapacityMB: 100},
	}
	if len(disks) != len(want) {
		t.Fatalf("disks %+v, want %+v", disks, want)
	}
	for i := range want {
		if disks[i] != want[i] {
			t.Errorf("disk %d = %+v, want %+v", i, disks[i], want[i])
		}
	}
	if disks[2].Class() != device.DiskUnknown || disks[1].Class() != device.DiskBusy || disks[3].Class() != device.DiskBad {
		t.Errorf("classes %s %s %s", disks[1].Class(), disks[2].Class(), disks[3].Class())
	}
}

func TestParseChannelsKeepsNoAddress(t *testing.T) {
	chans, err := parseChannels([]byte(channelsXML))
	if err != nil {
		t.Fatal(err)
	}
	want := []device.Channel{{ID: "1", Online: true, Detect: "connect"}, {ID: "2", Detect: "NETWORK_FAIL"}, {ID: "3", Online: true}}
	if len(chans) != 3 {
		t.Fatalf("channels %+v", chans)
	}
	for i := range want {
		if chans[i] != want[i] {
			t.Errorf("channel %d = %+v, want %+v", i, chans[i], want[i])
		}
	}
}

func TestParseHealthRefusals(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		parse func([]byte) error
		want  string
	}{
		{"a storage reply of another document is refused", `<DeviceInfo><model>x</model></DeviceInfo>`, storageErr, "not <storage>"},
		{"a disk without an id is refused", `<storage><hddList><hdd><status>ok</status></hdd></hddList></storage>`, storageErr, "has no id"},
		{"a disk without a status is no proof of health", ``, nil, ""},
		{"a broken document is refused", `<storage><hddList>`, storageErr, "not valid XML"},
		{"an empty reply is refused", ``, storageErr, "empty"},
		{"a channel without an id is refused", `<InputProxyChannelStatusList><InputProxyChannelStatus><online>true</online></InputProxyChannelStatus></InputProxyChannelStatusList>`, channelsErr, "has no id"},
		{"a notSupport ResponseStatus is a StatusError", `<ResponseStatus><statusCode>4</statusCode><subStatusCode>notSupport</subStatusCode></ResponseStatus>`, channelsErr, "notSupport"},
		{"two roots are refused", `<storage></storage><storage></storage>`, storageErr, "more than one root"},
	}
	for _, tt := range tests {
		if tt.parse == nil {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
	t.Run("a disk without a status is no proof of health", func(t *testing.T) {
		d, err := parseStorage([]byte(`<storage><hddList><hdd><id>1</id></hdd></hddList></storage>`))
		if err != nil || len(d) != 1 || d[0].Class() != device.DiskUnknown {
			t.Errorf("disks %+v, %v: want one unknown disk", d, err)
		}
	})
	t.Run("too many disks are refused", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("<storage><hddList>")
		for i := 0; i <= maxDisks; i++ {
			b.WriteString("<hdd><id>1</id><status>ok</status></hdd>")
		}
		b.WriteString("</hddList></storage>")
		if _, err := parseStorage([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("error %v", err)
		}
	})
}

func storageErr(b []byte) error  { _, err := parseStorage(b); return err }
func channelsErr(b []byte) error { _, err := parseChannels(b); return err }

// FuzzParseStorage: whatever the reply, the parser returns disks or an
// error, never panics, and a disk it returns has an id and a status.
func FuzzParseStorage(f *testing.F) {
	f.Add([]byte(storageXML))
	f.Add([]byte(`<hddList><hdd><id>1</id><status>ok</status></hdd></hddList>`))
	f.Add([]byte(`<ResponseStatus><statusCode>4</statusCode><subStatusCode>notSupport</subStatusCode></ResponseStatus>`))
	f.Add([]byte(`<storage><hddList><hdd><id>1</id><hdd><id>2</id></hdd></hdd></hddList></storage>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		disks, err := parseStorage(b)
		if err != nil {
			if disks != nil {
				t.Fatal("disks and an error")
			}
			return
		}
		for _, d := range disks {
			if d.ID == "" || d.Status == "" {
				t.Fatalf("disk %+v lacks an id or a status", d)
			}
			if d.Class() == device.DiskHealthy && !map[string]bool{"ok": true, "idle": true, "sleeping": true}[strings.ToLower(strings.TrimSpace(d.Status))] {
				t.Fatalf("status %q taken for healthy", d.Status)
			}
		}
	})
}

// FuzzParseChannels: whatever the reply, the parser never panics, and a
// channel is online only when its own online element says true.
func FuzzParseChannels(f *testing.F) {
	f.Add([]byte(channelsXML))
	f.Add([]byte(`<InputProxyChannelStatusList/>`))
	f.Add([]byte(`<InputProxyChannelStatusList><InputProxyChannelStatus><id>1</id><sourceInputPortDescriptor><online>true</online></sourceInputPortDescriptor></InputProxyChannelStatus></InputProxyChannelStatusList>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		chans, err := parseChannels(b)
		if err != nil {
			return
		}
		if len(chans) > maxChannels {
			t.Fatalf("%d channels", len(chans))
		}
		for _, c := range chans {
			if c.ID == "" {
				t.Fatalf("channel %+v without an id", c)
			}
			if c.Online && !bytes.Contains(bytes.ToLower(b), []byte("true")) && !bytes.Contains(b, []byte("1")) {
				t.Fatalf("channel %+v online without saying so", c)
			}
		}
	})
}

func TestParseChannelsIgnoresTheDescriptorsOnline(t *testing.T) {
	chans, err := parseChannels([]byte(`<InputProxyChannelStatusList><InputProxyChannelStatus><id>1</id><sourceInputPortDescriptor><online>true</online></sourceInputPortDescriptor></InputProxyChannelStatus></InputProxyChannelStatusList>`))
	if err != nil || len(chans) != 1 || chans[0].Online {
		t.Errorf("channels %+v, %v: the descriptor's online is not the channel's", chans, err)
	}
}

func TestHealthAgainstTheSimulator(t *testing.T) {
	for ns := range nvrsim.Namespaces {
		t.Run("a recorder in the "+ns+" namespace reports disks, channels and upgrade status", func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{Namespace: ns, Channels: 4, Disks: []nvrsim.Disk{{Status: "ok"}, {Status: "reparing"}}})
			c, logs := newTestClient(t, srv.URL(), nil)
			h, err := c.Health(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Disks) != 2 || h.Disks[1].Status != "reparing" || h.Disks[1].Class() != device.DiskBusy || h.Disks[0].CapacityMB == 0 {
				t.Errorf("disks %+v", h.Disks)
			}
			if len(h.Channels) != 4 || len(h.OnlineChannels()) != 4 || len(h.Unsupported) != 0 || h.Upgrade.Upgrading {
				t.Errorf("health %+v", h)
			}
			if strings.Contains(logs.String(), "192.168.254") {
				t.Errorf("a camera address reached the log:\n%s", logs)
			}
		})
	}
}

func TestHealthDegradesOnOlderRecorders(t *testing.T) {
	t.Run("old firmware has no health: not supported", func(t *testing.T) {
		srv := startSim(t, nvrsim.Config{OldFirmware: true})
		c, _ := newTestClient(t, srv.URL(), nil)
		h, err := c.Health(testCtx(t))
		if !errors.Is(err, device.ErrNotSupported) {
			t.Fatalf("error %v, want ErrNotSupported", err)
		}
		if len(h.Unsupported) != 2 || h.Supports(device.PartDisks) {
			t.Errorf("health %+v", h)
		}
		if device.IsTransient(err) {
			t.Error("not supported is not transient")
		}
	})
	t.Run("a recorder without IP channels reports its disks", func(t *testing.T) {
		srv := startSim(t, nvrsim.Config{Channels: -1})
		c, _ := newTestClient(t, srv.URL(), nil)
		h, err := c.Health(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if h.Supports(device.PartChannels) || !h.Supports(device.PartDisks) || len(h.Disks) != 2 {
			t.Errorf("health %+v", h)
		}
	})
	t.Run("a recorder down is unreachable, not unsupported", func(t *testing.T) {
		srv := startSim(t, nvrsim.Config{})
		srv.SetFaults(nvrsim.Faults{Status5xxFor: 100})
		c, _ := newTestClient(t, srv.URL(), nil)
		_, err := c.Health(testCtx(t))
		if err == nil || errors.Is(err, device.ErrNotSupported) || !device.IsTransient(err) {
			t.Errorf("error %v, want a transient failure", err)
		}
	})
}

func TestHealthSeesChannelsLostAfterAFlash(t *testing.T) {
	srv := startSim(t, nvrsim.Config{Channels: 8, FlashDuration: 10 * time.Millisecond})
	srv.SetFaults(nvrsim.Faults{ChannelsLostAfterFlash: 2})
	c, _ := newTestClient(t, srv.URL(), nil)
	path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
	ctx := testCtx(t)
	if err := c.Install(ctx, path, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if on := h.OnlineChannels(); strings.Join(on, ",") != "1,2,3,4,5,6" {
		t.Errorf("online channels %v, want 1-6", on)
	}
}

func TestExportConfig(t *testing.T) {
	srv := startSim(t, nvrsim.Config{Serial: "EXP1", ConfigSize: 300000})
	c, logs := newTestClient(t, srv.URL(), nil)
	t.Run("the file arrives whole and is not logged", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := c.ExportConfig(testCtx(t), &buf)
		if err != nil {
			t.Fatal(err)
		}
		if n != 300000 || !bytes.Equal(buf.Bytes(), srv.ConfigFile()) {
			t.Errorf("%d bytes, equal %v", n, bytes.Equal(buf.Bytes(), srv.ConfigFile()))
		}
		if strings.Contains(logs.String(), nvrsim.ConfigMarker) {
			t.Errorf("the configuration reached the log")
		}
	})
	t.Run("a failing export is an error, not unsupported", func(t *testing.T) {
		srv.SetFaults(nvrsim.Faults{ExportFails: true})
		_, err := c.ExportConfig(testCtx(t), io.Discard)
		if err == nil || errors.Is(err, device.ErrNotSupported) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("an unsupported export is not supported", func(t *testing.T) {
		srv.SetFaults(nvrsim.Faults{ExportNotSupported: true})
		_, err := c.ExportConfig(testCtx(t), io.Discard)
		if !errors.Is(err, device.ErrNotSupported) {
			t.Errorf("error %v, want ErrNotSupported", err)
		}
	})
	t.Run("old firmware has no export", func(t *testing.T) {
		old := startSim(t, nvrsim.Config{OldFirmware: true})
		oc, _ := newTestClient(t, old.URL(), nil)
		_, err := oc.ExportConfig(testCtx(t), io.Discard)
		if !errors.Is(err, device.ErrNotSupported) {
			t.Errorf("error %v, want ErrNotSupported", err)
		}
	})
	t.Run("a full disk is the writer's error", func(t *testing.T) {
		srv.SetFaults(nvrsim.Faults{})
		_, err := c.ExportConfig(testCtx(t), failingWriter{})
		if err == nil || !strings.Contains(err.Error(), "storing the configuration export") || device.IsTransient(err) {
			t.Errorf("error %v", err)
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

func TestExportConfigRefusesWhatIsNoConfigurationFile(t *testing.T) {
	tests := []struct {
		name    string
		ctype   string
		body    string
		length  int // announced Content-Length, 0 = the body's
		wantSub string
		notSup  bool
	}{
		{"a 200 ResponseStatus notSupport is not supported", "application/xml", `<ResponseStatus><statusCode>4</statusCode><subStatusCode>notSupport</subStatusCode></ResponseStatus>`, 0, "notSupport", true},
		{"an XML reply without a content type is no file", "", `<?xml version="1.0"?><DeviceInfo/>`, 0, "not a configuration file", false},
		{"an empty file is refused", "application/octet-stream", ``, 0, "empty", false},
		{"a short file is refused", "application/octet-stream", `abc`, 10, "broke after 3 bytes", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.ctype != "" {
					w.Header().Set("Content-Type", tt.ctype)
				}
				if tt.length > 0 {
					w.Header().Set("Content-Length", strconv.Itoa(tt.length))
				}
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c, _ := newTestClient(t, srv.URL, func(cfg *Config) { cfg.RetryMax = 0 })
			_, err := c.ExportConfig(testCtx(t), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantSub) || errors.Is(err, device.ErrNotSupported) != tt.notSup {
				t.Errorf("error %v, want one saying %q (not supported: %v)", err, tt.wantSub, tt.notSup)
			}
		})
	}
}
