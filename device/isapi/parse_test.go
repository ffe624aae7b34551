package isapi

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fwagent/fwagent/device"
)

const deviceInfoTmpl = `<?xml version="1.0" encoding="UTF-8"?>
<DeviceInfo version="2.0" xmlns="NS">
<deviceName>Network Video Recorder</deviceName>
<deviceID>48443031-3536-3233-3837-c056e3a1b2c3</deviceID>
<model>iDS-9632NXI-I8/16S</model>
<serialNumber>DS-9632NXI0123456789</serialNumber>
<macAddress>c0:56:e3:a1:b2:c3</macAddress>
<firmwareVersion>V4.1.25</firmwareVersion>
<firmwareReleasedDate>build 200316</firmwareReleasedDate>
<encoderVersion>V5.0</encoderVersion>
<deviceType>NVR</deviceType>
<customizedInfo><oem>x</oem></customizedInfo>
</DeviceInfo>`

func TestParseIdentityReadsEveryNamespace(t *testing.T) {
	for _, ns := range []string{
		"http://www.isapi.org/ver20/XMLSchema",
		"http://www.hikvision.com/ver20/XMLSchema",
		"http://www.std-cgi.org/ver20/XMLSchema",
		"urn:psialliance-org",
		"",
	} {
		t.Run("namespace "+ns, func(t *testing.T) {
			body := strings.Replace(deviceInfoTmpl, "NS", ns, 1)
			if ns == "" {
				body = strings.Replace(body, ` xmlns=""`, "", 1)
			}
			id, err := parseIdentity([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			want := device.Identity{Model: "iDS-9632NXI-I8/16S", Serial: "DS-9632NXI0123456789", FirmwareVersion: "V4.1.25", FirmwareBuild: "build 200316", DeviceType: "NVR"}
			if id.Model != want.Model || id.Serial != want.Serial || id.FirmwareVersion != want.FirmwareVersion || id.FirmwareBuild != want.FirmwareBuild || id.DeviceType != want.DeviceType {
				t.Errorf("identity = %+v, want %+v", id, want)
			}
			if id.Raw["deviceName"] != "Network Video Recorder" || id.Raw["customizedInfo.oem"] != "x" || id.Raw["encoderVersion"] != "V5.0" {
				t.Errorf("raw fields = %v, want every child element", id.Raw)
			}
		})
	}
}

func TestParseIdentityRefusesUnusableReplies(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"a reply that is not XML", "<html><body>login</body", "not valid XML"},
		{"another document", `<userCheck><statusValue>200</statusValue></userCheck>`, "not <DeviceInfo>"},
		{"a DeviceInfo without a model", `<DeviceInfo><firmwareVersion>V4.1.25</firmwareVersion></DeviceInfo>`, "lacks model"},
		{"a DeviceInfo without a firmware version", `<DeviceInfo><model>M</model></DeviceInfo>`, "lacks firmwareVersion"},
		{"an empty body", "", "empty document"},
		{"two root elements", `<DeviceInfo><model>M</model><firmwareVersion>1</firmwareVersion></DeviceInfo><DeviceInfo/>`, "more than one root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseIdentity([]byte(tt.body))
			if !errors.Is(err, ErrBadReply) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrBadReply mentioning %q", err, tt.want)
			}
		})
	}
	t.Run("a ResponseStatus becomes a StatusError", func(t *testing.T) {
		_, err := parseIdentity([]byte(`<ResponseStatus xmlns="urn:psialliance-org"><requestURL>/ISAPI/System/deviceInfo</requestURL><statusCode>2</statusCode><statusString>Device Busy</statusString><subStatusCode>deviceBusy</subStatusCode></ResponseStatus>`))
		var se *StatusError
		if !errors.As(err, &se) || !se.Transient() || se.Code() != "deviceBusy" {
			t.Errorf("err = %v, want a transient deviceBusy StatusError", err)
		}
	})
}

func TestReadCappedRefusesHugeReplies(t *testing.T) {
	_, err := readCapped(strings.NewReader(strings.Repeat("x", maxReply+1)))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("err = %v, want ErrTooLarge", err)
	}
}

func TestParseUpgradeStatus(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    device.InstallStatus
		wantErr bool
	}{
		{"flashing", `<upgradeStatus xmlns="http://www.hikvision.com/ver20/XMLSchema"><upgrading>true</upgrading><percent>45</percent></upgradeStatus>`, device.InstallStatus{Upgrading: true, Percent: 45}, false},
		{"idle", `<upgradeStatus><upgrading>false</upgrading><percent>0</percent></upgradeStatus>`, device.InstallStatus{}, false},
		{"a percent over 100", `<upgradeStatus><upgrading>true</upgrading><percent>101</percent></upgradeStatus>`, device.InstallStatus{}, true},
		{"no upgrading field", `<upgradeStatus><percent>3</percent></upgradeStatus>`, device.InstallStatus{}, true},
		{"the wrong document", `<DeviceInfo/>`, device.InstallStatus{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUpgradeStatus([]byte(tt.body))
			if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
				t.Errorf("parseUpgradeStatus = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestStatusErrorClasses(t *testing.T) {
	tests := []struct {
		code      int
		sub       string
		transient bool
		reboot    bool
		word      string
	}{
		{2, "deviceBusy", true, false, "deviceBusy"},
		{2, "", true, false, "deviceBusy"},
		{2, "upgrading", true, false, "upgrading"},
		{6, "badDevType", false, false, "badDevType"},
		{6, "badVersion", false, false, "badVersion"},
		{6, "badLanguage", false, false, "badLanguage"},
		{3, "badFlash", false, false, "badFlash"},
		{4, "notSupport", false, false, "notSupport"},
		{7, "rebootRequired", false, true, "rebootRequired"},
		{3, "", false, false, "deviceError"},
		{42, "", false, false, "status42"},
	}
	for _, tt := range tests {
		t.Run("statusCode "+tt.word+" is classed", func(t *testing.T) {
			se := &StatusError{StatusCode: tt.code, SubStatusCode: tt.sub, RequestURL: PathUpdateFirmware}
			if se.Transient() != tt.transient || se.RebootRequired() != tt.reboot || se.Code() != tt.word {
				t.Errorf("%+v: transient %v reboot %v code %q", se, se.Transient(), se.RebootRequired(), se.Code())
			}
			err := wrap("install", se)
			var de *device.Error
			if !errors.As(err, &de) || de.Code != tt.word || de.Transient != tt.transient || device.IsTransient(err) != tt.transient {
				t.Errorf("wrap = %#v", err)
			}
		})
	}
}

func TestParseLockInfo(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		locked        bool
		left, seconds int
	}{
		{"an XML ResponseStatus with attempts left", `<ResponseStatus><statusCode>4</statusCode><lockStatus>unlock</lockStatus><retryTimes>4</retryTimes><resLockTime>0</resLockTime></ResponseStatus>`, false, 4, 0},
		{"an XML lock", `<ResponseStatus xmlns="urn:x"><lockStatus>lock</lockStatus><retryTimes>0</retryTimes><resLockTime>1800</resLockTime></ResponseStatus>`, true, 0, 1800},
		{"a userCheck document", `<userCheck><lockStatus>unlock</lockStatus><unlockTime>0</unlockTime><retryLoginTime>2</retryLoginTime></userCheck>`, false, 2, 0},
		{"a JSON lock", `{"statusCode":4,"lockStatus":"lock","resLockTime":60}`, true, -1, 60},
		{"nothing", ``, false, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locked, left, secs := parseLockInfo([]byte(tt.body))
			if locked != tt.locked || left != tt.left || secs != tt.seconds {
				t.Errorf("parseLockInfo = %v, %d, %d; want %v, %d, %d", locked, left, secs, tt.locked, tt.left, tt.seconds)
			}
		})
	}
}

func TestParseFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	colons := strings.ToUpper(strings.TrimSuffix(strings.Repeat("AB:", 32), ":"))
	for _, s := range []string{hex, colons, "sha256:" + hex, " " + colons + " "} {
		if _, err := parseFingerprint(s); err != nil {
			t.Errorf("parseFingerprint(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "abcd", hex + "00", strings.Repeat("zz", 32)} {
		if _, err := parseFingerprint(s); err == nil {
			t.Errorf("parseFingerprint(%q) accepted a bad fingerprint", s)
		}
	}
}

func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte(strings.Replace(deviceInfoTmpl, "NS", "urn:psialliance-org", 1)))
	f.Add([]byte(`<ResponseStatus><statusCode>2</statusCode></ResponseStatus>`))
	f.Add([]byte(`<a><b><c>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseIdentity(b)
		if err == nil && (id.Model == "" || id.FirmwareVersion == "") {
			t.Errorf("accepted an identity without model or firmware: %+v", id)
		}
	})
}

func FuzzParseUpgradeStatus(f *testing.F) {
	f.Add([]byte(`<upgradeStatus><upgrading>true</upgrading><percent>45</percent></upgradeStatus>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseUpgradeStatus(b)
		if err == nil && (st.Percent < 0 || st.Percent > 100) {
			t.Errorf("percent %d out of range", st.Percent)
		}
	})
}

func FuzzParseLockInfo(f *testing.F) {
	f.Add([]byte(`<ResponseStatus><lockStatus>lock</lockStatus><resLockTime>60</resLockTime></ResponseStatus>`))
	f.Add([]byte(`{"lockStatus":"lock","retryTimes":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, left, secs := parseLockInfo(b)
		if left < -1 || secs < -1 {
			t.Errorf("negative figures %d %d", left, secs)
		}
	})
}

func TestADeviceWithoutASerialIsIdentifiedWithOneWarning(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, okDeviceInfo) // model and firmwareVersion, no serialNumber
	}))
	defer srv.Close()
	c, logs := newTestClient(t, srv.URL, nil)
	for i := 0; i < 3; i++ {
		id, err := c.Identify(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if id.Model != "M" || id.Serial != "" {
			t.Errorf("identity = %+v", id)
		}
	}
	if n := strings.Count(logs.String(), "deviceInfo has no serialNumber"); n != 1 {
		t.Errorf("the missing serial was logged %d times, want once:\n%s", n, logs)
	}
}
