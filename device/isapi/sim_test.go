package isapi

import (
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/nvrsim"
	"github.com/fwagent/fwagent/internal/testimage"
)

const protected = "iDS-9632NXI-I8/16S"

func TestIdentifyReadsEveryNamespace(t *testing.T) {
	for ns := range nvrsim.Namespaces {
		t.Run("a recorder in the "+ns+" namespace is identified", func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{Namespace: ns, Firmware: "V4.1.20", Build: "230619", Serial: "SER1"})
			c, _ := newTestClient(t, srv.URL(), nil)
			id, err := c.Identify(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if id.Model != protected || id.FirmwareVersion != "V4.1.20" || id.FirmwareBuild != "build 230619" || id.Serial != "SER1" || id.DeviceType != "NVR" {
				t.Errorf("identity = %+v", id)
			}
			if id.Raw["manufacturer"] != "hikvision" {
				t.Errorf("raw = %v, want every field", id.Raw)
			}
		})
	}
}

func TestInstallUploadStyles(t *testing.T) {
	tests := []struct {
		name   string
		faults nvrsim.Faults
		method string
	}{
		{"a recorder taking PUT gets the bare image", nvrsim.Faults{}, "PUT"},
		{"a recorder refusing PUT gets a multipart POST", nvrsim.Faults{PutNotSupported: true}, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{FlashDuration: 40 * time.Millisecond})
			srv.SetFaults(tt.faults)
			path, size := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom", Size: 300 << 10})
			c, _ := newTestClient(t, srv.URL(), nil)
			var prog progressLog
			if err := c.Install(testCtx(t), path, prog.add); err != nil {
				t.Fatal(err)
			}
			st := srv.State()
			if st.LastUpload == nil || st.LastUpload.Method != tt.method || st.LastUpload.Bytes != size || st.LastUpload.Result != "flashing" {
				t.Errorf("last upload = %+v, want %s of %d bytes", st.LastUpload, tt.method, size)
			}
			if st.Upgrading || st.Pending == nil || st.Pending.Version != "4.1.25" || st.Installs != 1 {
				t.Errorf("state = %+v, want the image flashed and pending", st)
			}
			if up, ok := prog.last("upload"); !ok || up.Done != size || up.Total != size {
				t.Errorf("last upload progress = %+v, want %d of %d", up, size, size)
			}
			if fl, ok := prog.last("flash"); !ok || fl.Done != 100 || fl.Total != 100 {
				t.Errorf("last flash progress = %+v, want 100%%", fl)
			}
		})
	}
}

func TestInstallFollowsFlashingProgress(t *testing.T) {
	srv := startSim(t, nvrsim.Config{FlashDuration: 200 * time.Millisecond})
	path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
	c, _ := newTestClient(t, srv.URL(), nil)
	var prog progressLog
	if err := c.Install(testCtx(t), path, prog.add); err != nil {
		t.Fatal(err)
	}
	var flash []int64
	for _, r := range prog.reports {
		if r.Phase == "flash" {
			flash = append(flash, r.Done)
		}
	}
	if len(flash) < 3 || flash[len(flash)-1] != 100 {
		t.Fatalf("flash progress %v, want several reports ending at 100", flash)
	}
	for i := 1; i < len(flash); i++ {
		if flash[i] < flash[i-1] {
			t.Errorf("flash progress went back: %v", flash)
		}
	}
}

func TestInstallAfterADroppedConnection(t *testing.T) {
	tests := []struct {
		name      string
		flash     time.Duration
		dropAt    func(size int64) int64
		wantErr   bool
		wantState string
	}{
		{"a drop at the end of the upload while flashing is not a failure", 100 * time.Millisecond, func(n int64) int64 { return n }, false, "flashing"},
		{"a drop at the end of the upload after a quick flash is not a failure", 0, func(n int64) int64 { return n }, false, "flashing"},
		{"a drop in the middle of the upload is a transient failure", 100 * time.Millisecond, func(n int64) int64 { return n / 2 }, true, "dropped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{FlashDuration: tt.flash})
			path, size := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom", Size: 256 << 10})
			srv.SetFaults(nvrsim.Faults{DropUploadAfter: tt.dropAt(size)})
			c, _ := newTestClient(t, srv.URL(), nil)
			err := c.Install(testCtx(t), path, nil)
			if tt.wantErr {
				if err == nil || !device.IsTransient(err) || !errors.Is(err, device.ErrUnreachable) {
					t.Errorf("err = %v, want a transient unreachable error", err)
				}
			} else if err != nil {
				t.Errorf("err = %v, want success", err)
			}
			if st := srv.State(); st.LastUpload == nil || st.LastUpload.Result != tt.wantState || st.Uploads > 1 {
				t.Errorf("state = %+v, want one upload with result %q", st, tt.wantState)
			}
		})
	}
}

func TestRebootAndReturn(t *testing.T) {
	srv := startSim(t, nvrsim.Config{Firmware: "V4.1.20", RebootDelay: 150 * time.Millisecond})
	path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
	c, _ := newTestClient(t, srv.URL(), nil)
	ctx := testCtx(t)
	if err := c.Install(ctx, path, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := c.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if id.FirmwareVersion != "V4.1.25" {
		t.Errorf("firmware after reboot = %q, want V4.1.25", id.FirmwareVersion)
	}
	if st := srv.State(); st.Reboots != 1 || st.Bricked {
		t.Errorf("state = %+v, want one reboot, not bricked", st)
	}
}

func TestWaitReadyGivesUpAfterRebootTimeout(t *testing.T) {
	srv := startSim(t, nvrsim.Config{})
	srv.SetFaults(nvrsim.Faults{NeverReturnFromReboot: true})
	c, _ := newTestClient(t, srv.URL(), func(cfg *Config) { cfg.RebootTimeout = 300 * time.Millisecond })
	ctx := testCtx(t)
	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.WaitReady(ctx)
	var de *device.Error
	if !errors.As(err, &de) || de.Code != "rebootTimeout" || !errors.Is(err, device.ErrUnreachable) {
		t.Errorf("err = %v, want rebootTimeout", err)
	}
}

func TestInstallMapsEveryResponseStatusClass(t *testing.T) {
	tests := []struct {
		sub       string
		transient bool
	}{
		{"badVersion", false},
		{"badLanguage", false},
		{"badFlash", false},
		{"badDevType", false},
		{"notSupport", false},
		{"deviceBusy", true},
		{"upgrading", true},
	}
	for _, tt := range tests {
		t.Run("an upload refused with "+tt.sub+" is classed", func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{})
			srv.SetFaults(nvrsim.Faults{RejectUpload: tt.sub})
			path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
			c, _ := newTestClient(t, srv.URL(), nil)
			err := c.Install(testCtx(t), path, nil)
			var de *device.Error
			var se *StatusError
			if !errors.As(err, &de) || de.Op != "install" || de.Code != tt.sub || de.Transient != tt.transient || !errors.As(err, &se) {
				t.Fatalf("err = %#v (%v), want code %s transient %v", err, err, tt.sub, tt.transient)
			}
			if se.SubStatusCode != tt.sub || se.StatusCode != nvrsim.SubStatusCode(tt.sub) || se.RequestURL == "" {
				t.Errorf("status error = %+v", se)
			}
		})
	}
}

func TestInstallRefusals(t *testing.T) {
	tests := []struct {
		name string
		spec testimage.Spec
		want string
	}{
		{"an image for another model gets badDevType", testimage.Spec{Model: "DS-7608NI-K2", Version: "4.1.25", Variant: "custom"}, "badDevType"},
		{"a damaged image gets badFlash", testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom", Corrupt: testimage.BadHeaderChecksum}, "badFlash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{})
			path, _ := writeImage(t, tt.spec)
			c, _ := newTestClient(t, srv.URL(), nil)
			err := c.Install(testCtx(t), path, nil)
			var de *device.Error
			if !errors.As(err, &de) || de.Code != tt.want || de.Transient {
				t.Errorf("err = %v, want fatal %s", err, tt.want)
			}
			if st := srv.State(); st.Installs != 0 {
				t.Errorf("installs = %d, want none", st.Installs)
			}
		})
	}
}

func TestRebootRequiredIsNeverAnsweredWithAReboot(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, srv *nvrsim.Server, c *Client, path string)
		method string
	}{
		{"an image left pending by an earlier upload stops the install without a reboot", func(t *testing.T, srv *nvrsim.Server, c *Client, path string) {
			if err := c.Install(testCtx(t), path, nil); err != nil {
				t.Fatal(err)
			}
		}, "PUT"},
		{"a device that asks for a reboot after the whole upload is not rebooted", func(t *testing.T, srv *nvrsim.Server, c *Client, path string) {
			srv.SetFaults(nvrsim.Faults{RejectUpload: "rebootRequired"})
		}, "PUT"},
		{"a rebootRequired answer to the multipart POST is not rebooted either", func(t *testing.T, srv *nvrsim.Server, c *Client, path string) {
			srv.SetFaults(nvrsim.Faults{RejectUpload: "rebootRequired", PutNotSupported: true})
		}, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{})
			path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
			c, logs := newTestClient(t, srv.URL(), nil)
			tt.setup(t, srv, c, path)
			before := srv.State()

			err := c.Install(testCtx(t), path, nil)
			var de *device.Error
			var se *StatusError
			if !errors.As(err, &de) || de.Op != "install" || de.Code != "rebootRequired" || de.Transient {
				t.Fatalf("err = %#v (%v), want a fatal install error with code rebootRequired", err, err)
			}
			if !errors.Is(err, device.ErrPendingImage) || !errors.As(err, &se) || !se.RebootRequired() {
				t.Errorf("err = %v, want it to wrap device.ErrPendingImage and the device's reply", err)
			}
			for _, want := range []string{"this upload did not send", "will not reboot into an image it has not proven", "reboot the device by hand"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to say %q", err, want)
				}
			}
			st := srv.State()
			if st.Reboots != 0 || st.Installs != before.Installs {
				t.Errorf("state = %+v, want no reboot and no new install", st)
			}
			if st.LastUpload == nil || st.LastUpload.Method != tt.method {
				t.Errorf("last upload = %+v, want one %s", st.LastUpload, tt.method)
			}
			if strings.Contains(logs.String(), "asking the device to reboot") {
				t.Error("the client asked the device to reboot")
			}
		})
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	tests := []struct {
		name     string
		faults   nvrsim.Faults
		retryMax int
		wantCode string
	}{
		{"a busy device answers after a few retries", nvrsim.Faults{BusyFor: 2}, 3, ""},
		{"a crashed web server answers after a few retries", nvrsim.Faults{Status5xxFor: 2}, 3, ""},
		{"a device busy for longer than the retries is a transient error", nvrsim.Faults{BusyFor: 10}, 1, "deviceBusy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{})
			srv.SetFaults(tt.faults)
			c, _ := newTestClient(t, srv.URL(), func(cfg *Config) { cfg.RetryMax = tt.retryMax })
			_, err := c.Identify(testCtx(t))
			if tt.wantCode == "" {
				if err != nil {
					t.Errorf("err = %v, want success", err)
				}
				return
			}
			var de *device.Error
			if !errors.As(err, &de) || de.Code != tt.wantCode || !de.Transient {
				t.Errorf("err = %v, want transient %s", err, tt.wantCode)
			}
		})
	}
}

func TestBadCredentialsCostExactlyOneFailedLogin(t *testing.T) {
	path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
	ops := []struct {
		name string
		run  func(*Client) error
	}{
		{"identify", func(c *Client) error { _, err := c.Identify(testCtx(t)); return err }},
		{"install", func(c *Client) error { return c.Install(testCtx(t), path, nil) }},
		{"install status", func(c *Client) error { _, err := c.InstallStatus(testCtx(t)); return err }},
		{"reboot", func(c *Client) error { return c.Reboot(testCtx(t)) }},
		{"wait ready", func(c *Client) error { _, err := c.WaitReady(testCtx(t)); return err }},
	}
	for _, op := range ops {
		t.Run(op.name+" with a wrong password stops after one failed login", func(t *testing.T) {
			srv := startSim(t, nvrsim.Config{AllowBasic: true})
			c, logs := newTestClient(t, srv.URL(), func(cfg *Config) { cfg.Password = "wrong-secret-pw"; cfg.AllowBasic = true })
			err := op.run(c)
			if !errors.Is(err, device.ErrBadCredentials) || device.IsTransient(err) {
				t.Fatalf("err = %v, want fatal ErrBadCredentials", err)
			}
			if !strings.Contains(err.Error(), "6 attempts left") {
				t.Errorf("err = %v, want the attempts left", err)
			}
			st := srv.State()
			if st.TotalFailedLogins != 1 || st.Uploads != 0 || st.LastUpload != nil || st.Reboots != 0 {
				t.Errorf("state = %+v, want exactly one failed login and nothing done", st)
			}
			for _, s := range []string{err.Error(), logs.String(), c.String()} {
				if strings.Contains(s, "wrong-secret-pw") || strings.Contains(s, "Authorization") {
					t.Errorf("a credential leaked: %q", s)
				}
			}
		})
	}
}

func TestLockedAccountIsNotMadeWorse(t *testing.T) {
	srv := startSim(t, nvrsim.Config{LockAfter: 1, LockFor: time.Hour})
	c, _ := newTestClient(t, srv.URL(), func(cfg *Config) { cfg.Password = "wrong" })
	_, err := c.Identify(testCtx(t))
	if !errors.Is(err, device.ErrLocked) || !strings.Contains(err.Error(), "locked the account for 3600 seconds") {
		t.Fatalf("err = %v, want ErrLocked for 3600 seconds", err)
	}
	// A second client (an agent restart) sees the lock before sending a login.
	c2, _ := newTestClient(t, srv.URL(), func(cfg *Config) { cfg.Password = "wrong" })
	for _, cl := range []*Client{c, c2} {
		if _, err := cl.Identify(testCtx(t)); !errors.Is(err, device.ErrLocked) {
			t.Errorf("err = %v, want ErrLocked", err)
		}
	}
	if st := srv.State(); st.TotalFailedLogins != 1 {
		t.Errorf("failed logins = %d, want 1", st.TotalFailedLogins)
	}
}

func TestTLS(t *testing.T) {
	srv := startSim(t, nvrsim.Config{TLS: true})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongPin := strings.Repeat("00", 32)
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr error
	}{
		{"a pinned certificate is accepted", func(c *Config) { c.CertSHA256 = srv.Fingerprint() }, nil},
		{"a pin with colons in capitals is accepted", func(c *Config) { c.CertSHA256 = Fingerprint(srv.Certificate()) }, nil},
		{"a wrong pin is refused", func(c *Config) { c.CertSHA256 = wrongPin }, ErrCertMismatch},
		{"a CA file is trusted", func(c *Config) { c.CAFile = caFile }, nil},
		{"a self-signed certificate is refused with the system roots", func(c *Config) {}, errUntrusted},
		{"skipping verification works but only when asked", func(c *Config) { c.InsecureSkipVerify = true }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, logs := newTestClient(t, srv.URL(), tt.mutate)
			before := srv.State().Requests
			_, err := c.Identify(testCtx(t))
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantErr == errUntrusted:
				if err == nil || !strings.Contains(err.Error(), "not trusted") {
					t.Fatalf("err = %v, want an untrusted certificate error", err)
				}
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && srv.State().Requests != before {
				t.Error("a request reached the device over an unverified connection")
			}
			if tt.wantErr == ErrCertMismatch && !strings.Contains(err.Error(), Fingerprint(srv.Certificate())) {
				t.Errorf("err = %v, want the presented fingerprint named", err)
			}
			if strings.Contains(tt.name, "skipping") && !strings.Contains(logs.String(), "VERIFICATION IS OFF") {
				t.Error("insecure_skip_verify was not logged loudly")
			}
		})
	}
}

var errUntrusted = errors.New("untrusted")

func TestARefusedPUTIsNotTriedAgain(t *testing.T) {
	srv := startSim(t, nvrsim.Config{RebootDelay: time.Millisecond})
	srv.SetFaults(nvrsim.Faults{PutNotSupported: true})
	path, _ := writeImage(t, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom"})
	c, _ := newTestClient(t, srv.URL(), nil)
	ctx := testCtx(t)
	for i := 0; i < 2; i++ {
		if err := c.Install(ctx, path, nil); err != nil {
			t.Fatal(err)
		}
		if st := srv.State(); st.LastUpload.Method != "POST" {
			t.Fatalf("upload %d used %s", i, st.LastUpload.Method)
		}
		// Boot the flashed image, as the agent does, before the next upload.
		if err := c.Reboot(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 2 images flashed and the second install went straight to POST.
	if st := srv.State(); st.Installs != 2 || st.Uploads != 2 {
		t.Errorf("installs = %d, uploads = %d, want 2 of each", st.Installs, st.Uploads)
	}
}

func BenchmarkInstall(b *testing.B) {
	srv, err := nvrsim.Start(nvrsim.Config{TempDir: b.TempDir(), RebootDelay: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	path := filepath.Join(b.TempDir(), "digicap.dav")
	size, _, err := testimage.WriteFile(path, testimage.Spec{Model: protected, Version: "4.1.25", Variant: "custom", Size: 32 << 20})
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{BaseURL: srv.URL(), Username: "admin", Password: "admin12345", PollInterval: time.Millisecond, DownGrace: time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		if err := c.Install(b.Context(), path, nil); err != nil {
			b.Fatal(err)
		}
		// Boot the flashed image: a pending image makes the next upload
		// fail with rebootRequired.
		if err := c.Reboot(b.Context()); err != nil {
			b.Fatal(err)
		}
		if _, err := c.WaitReady(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
