package nvrsim

import (
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fwagent/fwagent/internal/testimage"
)

func TestDropUploadMidBodyDoesNotFlash(t *testing.T) {
	for _, up := range uploaders {
		t.Run("a "+up.name+" cut after 1000 bytes is not flashed", func(t *testing.T) {
			srv := start(t, Config{})
			srv.SetFaults(Faults{DropUploadAfter: 1000})
			res, err := up.send(client(testUser, testPassword), srv.URL(), image(t, testimage.Spec{Size: 1 << 20}))
			if err == nil {
				res.Body.Close()
				t.Fatalf("upload answered %d, want a dropped connection", res.StatusCode)
			}
			st := srv.State()
			if st.LastUpload == nil || st.LastUpload.Result != "dropped" || st.LastUpload.Bytes != 1000 || st.Uploads != 0 || st.Upgrading || st.Installs != 0 {
				t.Errorf("state %+v last upload %+v", st, st.LastUpload)
			}
			// The recorder answers again afterwards, and a clean retry works.
			srv.SetFaults(Faults{})
			res, err = up.send(client(testUser, testPassword), srv.URL(), image(t, testimage.Spec{Size: 1 << 20}))
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, res); res.StatusCode != 200 {
				t.Errorf("retry: %d %s", res.StatusCode, body)
			}
		})
	}
}

func TestDropAtTheEndOfTheUploadStillFlashes(t *testing.T) {
	for _, up := range uploaders {
		t.Run("a "+up.name+" whose answer is lost is flashed all the same", func(t *testing.T) {
			srv := start(t, Config{FlashDuration: 20 * time.Millisecond})
			path := image(t, testimage.Spec{Size: 64 << 10})
			fi, _ := os.Stat(path)
			srv.SetFaults(Faults{DropUploadAfter: fi.Size()})
			c := client(testUser, testPassword)
			res, err := up.send(c, srv.URL(), path)
			if err == nil {
				res.Body.Close()
				t.Fatalf("upload answered %d, want a dropped connection", res.StatusCode)
			}
			st := waitFor(t, srv.Sim, "flashing to end", func(s State) bool { return s.Installs == 1 && !s.Upgrading })
			if st.Uploads != 1 || st.Pending == nil || st.LastUpload.Result != "flashing" {
				t.Errorf("state %+v", st)
			}
			code, body := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/upgradeStatus")
			if code != 200 || !containsAll(string(body), "<upgrading>false</upgrading>", "<percent>100</percent>") {
				t.Errorf("upgradeStatus after the drop: %d %s", code, body)
			}
		})
	}
}

func TestSlowResponses(t *testing.T) {
	srv := start(t, Config{})
	srv.SetFaults(Faults{SlowResponses: time.Minute})
	c := client(testUser, testPassword)
	c.Timeout = 50 * time.Millisecond
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo", nil)
	res, err := c.Do(req)
	var ne net.Error
	if err == nil {
		res.Body.Close()
		t.Fatalf("a slow recorder answered %d within the client's timeout", res.StatusCode)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v, want a timeout", err)
	}
	srv.SetFaults(Faults{})
	c.Timeout = 0
	if code, _ := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo"); code != 200 {
		t.Errorf("status %d once the fault is cleared", code)
	}
}

func TestStatus5xxAndBusyCountDown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults Faults
		status int
		sub    string
	}{
		{"the next 2 requests get a plain 500", Faults{Status5xxFor: 2}, 500, ""},
		{"the next 2 requests get deviceBusy", Faults{BusyFor: 2}, 503, "deviceBusy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := start(t, Config{})
			srv.SetFaults(tc.faults)
			c := client(testUser, testPassword)
			for i := range 2 {
				code, body := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo")
				if code != tc.status {
					t.Fatalf("request %d: status %d, want %d", i+1, code, tc.status)
				}
				if tc.sub != "" {
					if rs := xmlStatus(t, body); rs.StatusCode != 2 || rs.SubStatusCode != tc.sub || rs.StatusString != "Device Busy" {
						t.Errorf("request %d: %+v", i+1, rs)
					}
				}
			}
			if code, _ := do(t, c, http.MethodGet, srv.URL()+"/ISAPI/System/deviceInfo"); code != 200 {
				t.Errorf("third request: status %d, want 200", code)
			}
			if f := srv.Faults(); f.Status5xxFor != 0 || f.BusyFor != 0 {
				t.Errorf("counters left %+v", f)
			}
		})
	}
}

func TestRejectUpload(t *testing.T) {
	for _, tc := range []struct {
		sub          string
		status, code int
	}{
		{"badVersion", 400, 6},
		{"badLanguage", 400, 6},
		{"rebootRequired", 200, 7},
		{"upgrading", 503, 2},
		{"badFlash", 500, 3},
		{"somethingNew", 500, 3},
	} {
		t.Run("an upload rejected with "+tc.sub, func(t *testing.T) {
			srv := start(t, Config{})
			srv.SetFaults(Faults{RejectUpload: tc.sub})
			res, err := putImage(client(testUser, testPassword), srv.URL(), image(t, testimage.Spec{}))
			if err != nil {
				t.Fatal(err)
			}
			rs := xmlStatus(t, readAll(t, res))
			if res.StatusCode != tc.status || rs.StatusCode != tc.code || rs.SubStatusCode != tc.sub {
				t.Errorf("got %d %+v, want %d statusCode %d", res.StatusCode, rs, tc.status, tc.code)
			}
			if st := srv.State(); st.Upgrading || st.Installs != 0 {
				t.Errorf("a rejected upload was flashed: %+v", st)
			}
		})
	}
}

func TestPutNotSupportedFallsBackToPost(t *testing.T) {
	srv := start(t, Config{})
	srv.SetFaults(Faults{PutNotSupported: true})
	c := client(testUser, testPassword)
	path := image(t, testimage.Spec{Size: 128 << 10})
	res, err := putImage(c, srv.URL(), path)
	if err != nil {
		t.Fatal(err)
	}
	if rs := xmlStatus(t, readAll(t, res)); res.StatusCode != 403 || rs.StatusCode != 4 || rs.SubStatusCode != "notSupport" {
		t.Errorf("PUT: %d %+v, want 403 statusCode 4 notSupport", res.StatusCode, rs)
	}
	res, err = postImage(c, srv.URL(), path)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, res); res.StatusCode != 200 {
		t.Errorf("POST: %d %s", res.StatusCode, body)
	}
	if st := srv.State(); st.Installs != 1 || st.LastUpload.Method != "POST" {
		t.Errorf("state %+v", st)
	}
}

func TestReturnOnOldFirmware(t *testing.T) {
	srv := start(t, Config{Firmware: "4.1.20"})
	c := client(testUser, testPassword)
	res, err := putImage(c, srv.URL(), image(t, testimage.Spec{Version: "4.1.25"}))
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	srv.SetFaults(Faults{ReturnOnOldFirmware: true})
	do(t, c, http.MethodPut, srv.URL()+"/ISAPI/System/reboot")
	waitFor(t, srv.Sim, "the reboot", func(s State) bool { return s.Reboots == 1 && !s.Rebooting })
	if di, _ := deviceInfo(t, c, srv.URL()); di.FirmwareVersion != "V4.1.20" {
		t.Errorf("firmware %s, want the old V4.1.20", di.FirmwareVersion)
	}
}

func TestFaultsCanBeSetOverHTTP(t *testing.T) {
	srv := start(t, Config{})
	req, _ := http.NewRequest(http.MethodPut, srv.URL()+"/debug/faults", strings.NewReader(`{"busy_for": 1, "reject_upload": "badVersion"}`))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, res)
	if f := srv.Faults(); res.StatusCode != 200 || f.BusyFor != 1 || f.RejectUpload != "badVersion" {
		t.Errorf("status %d faults %+v", res.StatusCode, f)
	}
	req, _ = http.NewRequest(http.MethodPut, srv.URL()+"/debug/faults", strings.NewReader(`{"busy": 1}`))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, res); res.StatusCode != 400 || !strings.Contains(string(body), "busy") {
		t.Errorf("unknown field: %d %s", res.StatusCode, body)
	}
}
