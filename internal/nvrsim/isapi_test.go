package nvrsim

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/testimage"
	"github.com/icholy/digest"
)

// deviceInfo reads and decodes deviceInfo, matching elements by local name.
func deviceInfo(t *testing.T, c *http.Client, base string) (DeviceInfo, string) {
	t.Helper()
	code, body := do(t, c, http.MethodGet, base+"/ISAPI/System/deviceInfo")
	if code != http.StatusOK {
		t.Fatalf("deviceInfo: status %d body %s", code, body)
	}
	var di struct {
		XMLName         xml.Name
		Model           string `xml:"model"`
		SerialNumber    string `xml:"serialNumber"`
		FirmwareVersion string `xml:"firmwareVersion"`
		FirmwareDate    string `xml:"firmwareReleasedDate"`
		DeviceType      string `xml:"deviceType"`
	}
	if err := xml.Unmarshal(body, &di); err != nil {
		t.Fatalf("deviceInfo is not XML: %v\n%s", err, body)
	}
	return DeviceInfo{XMLName: di.XMLName, Model: di.Model, SerialNumber: di.SerialNumber, FirmwareVersion: di.FirmwareVersion,
		FirmwareReleasedDate: di.FirmwareDate, DeviceType: di.DeviceType}, string(body)
}

func TestDeviceInfoInEveryNamespace(t *testing.T) {
	for name, ns := range Namespaces {
		t.Run("namespace "+name+" is written as "+ns, func(t *testing.T) {
			srv := start(t, Config{Namespace: name, Model: "DS-7608NI-K2", Firmware: "4.62.210", Build: "230619", Serial: "DS-7608NI-K20820230619CCRRL12345678WCVU"})
			di, body := deviceInfo(t, client(testUser, testPassword), srv.URL())
			if di.XMLName.Space != ns || di.XMLName.Local != "DeviceInfo" {
				t.Errorf("root %v, want DeviceInfo in %s", di.XMLName, ns)
			}
			if di.Model != "DS-7608NI-K2" || di.FirmwareVersion != "V4.62.210" || di.FirmwareReleasedDate != "build 230619" ||
				di.DeviceType != "NVR" || di.SerialNumber != "DS-7608NI-K20820230619CCRRL12345678WCVU" {
				t.Errorf("deviceInfo %+v", di)
			}
			for _, el := range []string{"deviceName", "deviceID", "macAddress", "encoderVersion", "encoderReleasedDate", "telecontrolID", "hardwareVersion", `version="2.0"`} {
				if !strings.Contains(body, el) {
					t.Errorf("deviceInfo lacks %s:\n%s", el, body)
				}
			}
		})
	}
}

func TestUnknownNamespaceIsAnError(t *testing.T) {
	if _, err := NewChecked(Config{Namespace: "onvif"}); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("error %v, want one naming the namespace", err)
	}
}

// uploader is one of the two upload styles.
type uploader struct {
	name string
	send func(c *http.Client, base, path string) (*http.Response, error)
}

var uploaders = []uploader{{"PUT octet-stream", putImage}, {"POST multipart", postImage}}

func TestUploadFlashRebootShowsTheNewFirmware(t *testing.T) {
	for _, up := range uploaders {
		t.Run("an image sent by "+up.name+" is flashed and active after the reboot", func(t *testing.T) {
			srv := start(t, Config{Firmware: "V4.1.20", RebootDelay: 20 * time.Millisecond})
			c := client(testUser, testPassword)
			path := image(t, testimage.Spec{Model: ProtectedModel, Version: "4.1.25", Variant: "custom", Size: 256 << 10})
			raw, _ := os.ReadFile(path)
			sum := sha256.Sum256(raw)
			res, err := up.send(c, srv.URL(), path)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, res)
			if rs := xmlStatus(t, body); res.StatusCode != 200 || rs.StatusCode != 1 || rs.SubStatusCode != "ok" {
				t.Fatalf("upload: status %d body %s", res.StatusCode, body)
			}
			st := waitFor(t, srv.Sim, "flashing to end", func(s State) bool { return !s.Upgrading && s.Percent == 100 })
			if st.LastUploadSHA256 != hex.EncodeToString(sum[:]) || st.Uploads != 1 || st.Installs != 1 || st.Pending == nil {
				t.Fatalf("state after upload %+v", st)
			}
			if di, _ := deviceInfo(t, c, srv.URL()); di.FirmwareVersion != "V4.1.20" {
				t.Errorf("firmware %s before the reboot, want the old V4.1.20", di.FirmwareVersion)
			}
			if code, body := do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot"); code != 200 || xmlStatus(t, body).StatusCode != 1 {
				t.Fatalf("reboot: %d %s", code, body)
			}
			waitFor(t, srv.Sim, "the reboot to end", func(s State) bool { return s.Reboots == 1 && !s.Rebooting })
			di, _ := deviceInfo(t, c, srv.URL())
			if di.FirmwareVersion != "V4.1.25" {
				t.Errorf("firmware %s after the reboot, want V4.1.25", di.FirmwareVersion)
			}
			if st := srv.State(); st.Variant != "custom" || st.Bricked {
				t.Errorf("state %+v", st)
			}
		})
	}
}

func TestUpgradeStatusRisesWhileFlashing(t *testing.T) {
	srv := start(t, Config{FlashDuration: 2 * time.Second})
	c := client(testUser, testPassword)
	res, err := putImage(c, srv.URL(), image(t, testimage.Spec{}))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	var seen []UpgradeStatus
	for {
		code, body := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/upgradeStatus")
		var us UpgradeStatus
		if err := xml.Unmarshal(body, &us); err != nil || code != 200 {
			t.Fatalf("upgradeStatus %d %s: %v", code, body, err)
		}
		seen = append(seen, us)
		if !us.Upgrading {
			break
		}
		last := us.Percent
		waitFor(t, srv.Sim, "progress", func(s State) bool { return s.Percent != last || !s.Upgrading })
	}
	if !seen[0].Upgrading {
		t.Errorf("first status %+v, want upgrading right after the upload", seen[0])
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Percent < seen[i-1].Percent {
			t.Errorf("percent went down: %+v", seen)
		}
	}
	if end := seen[len(seen)-1]; end.Upgrading || end.Percent != 100 || len(seen) < 3 {
		t.Errorf("statuses %+v, want several, ending upgrading=false percent=100", seen)
	}
}

func TestStructurallyInvalidImagesAreBadFlash(t *testing.T) {
	for _, corrupt := range testimage.Corruptions() {
		t.Run("an image with "+corrupt.String()+" is refused with badFlash", func(t *testing.T) {
			srv := start(t, Config{})
			res, err := putImage(client(testUser, testPassword), srv.URL(), image(t, testimage.Spec{Corrupt: corrupt}))
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, res)
			rs := xmlStatus(t, body)
			if res.StatusCode != 500 || rs.StatusCode != 3 || rs.SubStatusCode != "badFlash" {
				t.Errorf("status %d body %s, want 500 statusCode 3 badFlash", res.StatusCode, body)
			}
			if st := srv.State(); st.Upgrading || st.Installs != 0 || st.LastUpload == nil || st.LastUpload.Result != "badFlash" {
				t.Errorf("state %+v", st)
			}
		})
	}
}

func TestImageForAnotherModelIsBadDevType(t *testing.T) {
	srv := start(t, Config{Model: ProtectedModel})
	res, err := postImage(client(testUser, testPassword), srv.URL(), image(t, testimage.Spec{Model: "iDS-9632NXI-I8/S", Variant: "standard", Version: "4.1.30"}))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, res)
	if rs := xmlStatus(t, body); res.StatusCode != 400 || rs.StatusCode != 6 || rs.SubStatusCode != "badDevType" {
		t.Errorf("status %d body %s, want 400 statusCode 6 badDevType", res.StatusCode, body)
	}
	if st := srv.State(); st.Bricked || st.Installs != 0 {
		t.Errorf("state %+v", st)
	}
}

func TestDamageModel(t *testing.T) {
	for _, tc := range []struct {
		name           string
		model          string
		spec           testimage.Spec
		bricked        bool
		wantFirmware   string
		wantVariantNow string
	}{
		{"the protected model survives custom 4.1.25", ProtectedModel, testimage.Spec{Version: "4.1.25", Variant: "custom"}, false, "V4.1.25", "custom"},
		{"the protected model survives custom V4.1.25 written with a V", ProtectedModel, testimage.Spec{Version: "V4.1.25", Variant: "custom"}, false, "V4.1.25", "custom"},
		{"the protected model is bricked by standard 4.1.25", ProtectedModel, testimage.Spec{Version: "4.1.25", Variant: "standard"}, true, "", ""},
		{"the protected model is bricked by standard 4.1.30", ProtectedModel, testimage.Spec{Version: "4.1.30", Variant: "standard"}, true, "", ""},
		{"the protected model is bricked by another custom version", ProtectedModel, testimage.Spec{Version: "4.1.24", Variant: "custom"}, true, "", ""},
		{"the protected model is bricked by custom 4.1.26", ProtectedModel, testimage.Spec{Version: "4.1.26", Variant: "custom"}, true, "", ""},
		{"the protected model is bricked by custom 4.1.25.0", ProtectedModel, testimage.Spec{Version: "4.1.25.0", Variant: "custom"}, true, "", ""},
		{"the protected model is bricked by custom 04.01.25", ProtectedModel, testimage.Spec{Version: "04.01.25", Variant: "custom"}, true, "", ""},
		{"the protected model is bricked by custom 4.1.25 with a leading space", ProtectedModel, testimage.Spec{Version: " 4.1.25", Variant: "custom"}, true, "", ""},
		{"the protected model is bricked by custom 4.1.25 with a build in the version", ProtectedModel, testimage.Spec{Version: "4.1.25 build 200316", Variant: "custom"}, true, "", ""},
		{"look-alike iDS-9632NXI-I8/S takes standard firmware", "iDS-9632NXI-I8/S", testimage.Spec{Version: "4.1.30", Variant: "standard"}, false, "V4.1.30", "standard"},
		{"look-alike iDS-9632NXI-I8/X takes standard firmware", "iDS-9632NXI-I8/X", testimage.Spec{Version: "4.1.30", Variant: "standard"}, false, "V4.1.30", "standard"},
		{"look-alike iDS-9632NXI-I8/16S(C) takes custom 4.1.24", "iDS-9632NXI-I8/16S(C)", testimage.Spec{Version: "4.1.24", Variant: "custom"}, false, "V4.1.24", "custom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t, Config{Model: tc.model, Firmware: "4.1.20", FlashDuration: 10 * time.Millisecond})
			c := client(testUser, testPassword)
			spec := tc.spec
			spec.Model = tc.model
			res, err := putImage(c, srv.URL(), image(t, spec))
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, res); res.StatusCode != 200 {
				t.Fatalf("upload: %d %s", res.StatusCode, body)
			}
			st := waitFor(t, srv.Sim, "flashing to end", func(s State) bool { return s.Installs == 1 })
			if st.Bricked != tc.bricked {
				t.Fatalf("bricked = %v, want %v (%s)", st.Bricked, tc.bricked, st.BrickReason)
			}
			if tc.bricked {
				for _, path := range []string{"/ISAPI/System/deviceInfo", "/ISAPI/System/upgradeStatus", "/ISAPI/System/reboot"} {
					req, _ := http.NewRequest(http.MethodGet, srv.URL()+path, nil)
					if res, err := c.Do(req); err == nil {
						res.Body.Close()
						t.Errorf("a bricked recorder answered %s with %d", path, res.StatusCode)
					}
				}
				res, err := http.Get(srv.URL() + "/debug/state")
				if err != nil {
					t.Fatal(err)
				}
				var js State
				if err := json.NewDecoder(res.Body).Decode(&js); err != nil || !js.Bricked || js.BrickReason == "" {
					t.Errorf("/debug/state %+v (%v), want bricked with a reason", js, err)
				}
				res.Body.Close()
				return
			}
			do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot")
			waitFor(t, srv.Sim, "the reboot", func(s State) bool { return s.Reboots == 1 && !s.Rebooting })
			if di, _ := deviceInfo(t, c, srv.URL()); di.FirmwareVersion != tc.wantFirmware {
				t.Errorf("firmware %s, want %s", di.FirmwareVersion, tc.wantFirmware)
			}
			if st := srv.State(); st.Variant != tc.wantVariantNow {
				t.Errorf("variant %s, want %s", st.Variant, tc.wantVariantNow)
			}
		})
	}
}

func TestUnidentifiedImageBricksOnlyTheProtectedModel(t *testing.T) {
	unidentified := func(path string, size int64) (Image, error) { return Image{}, nil }
	for _, tc := range []struct {
		model   string
		status  int
		bricked bool
	}{{ProtectedModel, 200, true}, {"DS-7608NI-K2", 400, false}} {
		t.Run(tc.model, func(t *testing.T) {
			srv := start(t, Config{Model: tc.model, Inspect: unidentified})
			res, err := putImage(client(testUser, testPassword), srv.URL(), image(t, testimage.Spec{}))
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, res)
			if res.StatusCode != tc.status {
				t.Errorf("status %d body %s, want %d", res.StatusCode, body, tc.status)
			}
			if st := srv.State(); st.Bricked != tc.bricked {
				t.Errorf("bricked %v, want %v", st.Bricked, tc.bricked)
			}
		})
	}
}

func TestRebootTakesTheRecorderDown(t *testing.T) {
	srv := start(t, Config{})
	c := client(testUser, testPassword)
	srv.SetFaults(Faults{NeverReturnFromReboot: true})
	if code, body := do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot"); code != 200 {
		t.Fatalf("reboot: %d %s", code, body)
	}
	waitFor(t, srv.Sim, "the reboot", func(s State) bool { return s.Rebooting })
	fresh := client(testUser, testPassword)
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo", nil)
		if res, err := fresh.Do(req); err == nil {
			res.Body.Close()
			t.Fatalf("a rebooting recorder answered %d", res.StatusCode)
		}
	}
	res, err := http.Get(srv.URL() + "/debug/state")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/debug/state while down: %v", err)
	}
	res.Body.Close()
}

func TestRebootWithoutAnImageKeepsTheFirmware(t *testing.T) {
	srv := start(t, Config{Firmware: "V4.1.20", RebootDelay: 5 * time.Millisecond})
	c := client(testUser, testPassword)
	do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot")
	waitFor(t, srv.Sim, "the reboot", func(s State) bool { return s.Reboots == 1 && !s.Rebooting })
	if di, _ := deviceInfo(t, c, srv.URL()); di.FirmwareVersion != "V4.1.20" {
		t.Errorf("firmware %s", di.FirmwareVersion)
	}
}

func TestCommandsWhileBusy(t *testing.T) {
	srv := start(t, Config{FlashDuration: time.Hour})
	c := client(testUser, testPassword)
	path := image(t, testimage.Spec{})
	res, err := putImage(c, srv.URL(), path)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	waitFor(t, srv.Sim, "flashing", func(s State) bool { return s.Upgrading })
	res, err = putImage(c, srv.URL(), path)
	if err != nil {
		t.Fatal(err)
	}
	if rs := xmlStatus(t, readAll(t, res)); res.StatusCode != 503 || rs.StatusCode != 2 || rs.SubStatusCode != "upgrading" {
		t.Errorf("second upload while flashing: %d %+v, want 503 statusCode 2 upgrading", res.StatusCode, rs)
	}
	code, body := do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot")
	if rs := xmlStatus(t, body); code != 503 || rs.SubStatusCode != "upgrading" {
		t.Errorf("reboot while flashing: %d %s", code, body)
	}
	if srv.State().Rebooting {
		t.Error("rebooted while flashing")
	}
}

func TestUploadAfterFlashNeedsAReboot(t *testing.T) {
	srv := start(t, Config{})
	c := client(testUser, testPassword)
	path := image(t, testimage.Spec{})
	for i, want := range []int{1, 7} {
		res, err := putImage(c, srv.URL(), path)
		if err != nil {
			t.Fatal(err)
		}
		if rs := xmlStatus(t, readAll(t, res)); res.StatusCode != 200 || rs.StatusCode != want {
			t.Errorf("upload %d: %d %+v, want statusCode %d", i+1, res.StatusCode, rs, want)
		}
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	srv := start(t, Config{})
	c := client(testUser, testPassword)
	for _, tc := range []struct {
		method, path string
		status       int
		sub          string
	}{
		{http.MethodGet, "/ISAPI/System/nothing", 404, "notSupport"},
		{http.MethodDelete, "/ISAPI/System/deviceInfo", 405, "methodNotAllowed"},
		{http.MethodGet, "/ISAPI/System/reboot", 405, "methodNotAllowed"},
		{http.MethodGet, "/ISAPI/System/updateFirmware", 405, "methodNotAllowed"},
	} {
		code, body := do(t, c, tc.method, srv.URL()+tc.path)
		if rs := xmlStatus(t, body); code != tc.status || rs.SubStatusCode != tc.sub || rs.RequestURL != tc.path {
			t.Errorf("%s %s: %d %+v", tc.method, tc.path, code, rs)
		}
	}
}

func TestDebugStateNeedsNoAuth(t *testing.T) {
	srv := start(t, Config{Model: "DS-7608NI-K2", Serial: "S1", Firmware: "4.62.210"})
	res, err := http.Get(srv.URL() + "/debug/state")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for k, want := range map[string]any{"model": "DS-7608NI-K2", "serial": "S1", "firmware": "V4.62.210", "bricked": false, "installs": 0.0, "failed_logins": 0.0, "locked": false} {
		if st[k] != want {
			t.Errorf("%s = %v, want %v", k, st[k], want)
		}
	}
}

func TestWaitStopsWithTheContext(t *testing.T) {
	s := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(ctx, func(State) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
}

// A state that lasts from one change to the next is seen by a Wait that
// was blocked, however late its goroutine runs: the condition is checked
// as each change is made.
func TestWaitSeesAStateThatLastsAnInstant(t *testing.T) {
	s := New(Config{})
	done := make(chan error, 1)
	go func() {
		done <- s.Wait(context.Background(), func(st State) bool { return st.Faults.BusyFor == 3 })
	}()
	// Until the Wait is registered; then two changes back to back.
	for {
		s.mu.Lock()
		n := len(s.waiters)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		runtime.Gosched()
	}
	s.SetFaults(Faults{BusyFor: 3})
	s.SetFaults(Faults{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("Wait missed the state between two changes")
	}
	s.mu.Lock()
	left := len(s.waiters)
	s.mu.Unlock()
	if left != 0 {
		t.Errorf("%d waiters left after the Wait returned", left)
	}
}

func TestTLSCertificateCanBePinned(t *testing.T) {
	srv := start(t, Config{TLS: true})
	if !strings.HasPrefix(srv.URL(), "https://") || len(srv.Fingerprint()) != 64 {
		t.Fatalf("url %s fingerprint %q", srv.URL(), srv.Fingerprint())
	}
	pinned := func(fp string) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true, // replaced by the pin check below
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				sum := sha256.Sum256(raw[0])
				if hex.EncodeToString(sum[:]) != fp {
					return errors.New("certificate does not match the pin")
				}
				return nil
			},
		}}
		return &http.Client{Transport: &digest.Transport{Username: testUser, Password: testPassword, Transport: tr}}
	}
	if code, _ := do(t, pinned(srv.Fingerprint()), http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo"); code != 200 {
		t.Errorf("pinned client: status %d", code)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo", nil)
	if res, err := pinned(strings.Repeat("0", 64)).Do(req); err == nil {
		res.Body.Close()
		t.Error("a wrong pin was accepted")
	}
	if _, err := http.Get(srv.URL() + "/ISAPI/System/deviceInfo"); err == nil {
		t.Error("the self-signed certificate passed system verification")
	}
}

func TestCurlDigestReadsDeviceInfo(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	srv := start(t, Config{Firmware: "V4.1.20"})
	out, err := exec.Command(curl, "-sS", "--fail", "--digest", "-u", testUser+":"+testPassword, srv.URL()+"/ISAPI/System/deviceInfo").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if !containsAll(string(out), "<firmwareVersion>V4.1.20</firmwareVersion>", "<deviceType>NVR</deviceType>") {
		t.Errorf("curl got %s", out)
	}
	if st := srv.State(); st.FailedLogins != 0 {
		t.Errorf("curl's digest login counted as failed")
	}
}
