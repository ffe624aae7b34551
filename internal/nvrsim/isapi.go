package nvrsim

import (
	"crypto/md5"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// statusStrings are ResponseStatus's statusString for each statusCode.
var statusStrings = map[int]string{
	1: "OK",
	2: "Device Busy",
	3: "Device Error",
	4: "Invalid Operation",
	5: "Invalid XML Format",
	6: "Invalid XML Content",
	7: "Reboot Required",
	9: "Additional Error",
}

// httpStatuses are the HTTP statuses recorders send with each statusCode.
var httpStatuses = map[int]int{
	1: http.StatusOK,
	2: http.StatusServiceUnavailable,
	3: http.StatusInternalServerError,
	4: http.StatusForbidden,
	5: http.StatusBadRequest,
	6: http.StatusBadRequest,
	7: http.StatusOK,
	9: http.StatusInternalServerError,
}

// SubStatusCode returns the ResponseStatus statusCode that goes with a
// subStatusCode; unknown ones are Device Error (3).
func SubStatusCode(sub string) int {
	switch sub {
	case "ok":
		return 1
	case "deviceBusy", "upgrading":
		return 2
	case "deviceError", "badFlash":
		return 3
	case "notSupport", "invalidOperation", "methodNotAllowed", "badAuthorization", "lowPrivilege":
		return 4
	case "badXmlFormat":
		return 5
	case "badDevType", "badVersion", "badLanguage", "badParameters", "badXmlContent":
		return 6
	case "rebootRequired":
		return 7
	}
	return 3
}

// ResponseStatus is the recorder's answer to commands and errors.
type ResponseStatus struct {
	XMLName       xml.Name `xml:"ResponseStatus"`
	Version       string   `xml:"version,attr"`
	XMLNS         string   `xml:"xmlns,attr"`
	RequestURL    string   `xml:"requestURL"`
	StatusCode    int      `xml:"statusCode"`
	StatusString  string   `xml:"statusString"`
	SubStatusCode string   `xml:"subStatusCode"`
	LockStatus    string   `xml:"lockStatus,omitempty"`  // "lock" or "unlock", on 401s
	RetryTimes    *int     `xml:"retryTimes,omitempty"`  // failed logins left before the lock, on 401s
	ResLockTime   *int     `xml:"resLockTime,omitempty"` // seconds the lock still lasts, on 401s
}

// DeviceInfo is the document of GET /ISAPI/System/deviceInfo.
type DeviceInfo struct {
	XMLName              xml.Name `xml:"DeviceInfo"`
	Version              string   `xml:"version,attr"`
	XMLNS                string   `xml:"xmlns,attr"`
	DeviceName           string   `xml:"deviceName"`
	DeviceID             string   `xml:"deviceID"`
	DeviceDescription    string   `xml:"deviceDescription"`
	Model                string   `xml:"model"`
	SerialNumber         string   `xml:"serialNumber"`
	MACAddress           string   `xml:"macAddress"`
	FirmwareVersion      string   `xml:"firmwareVersion"`
	FirmwareReleasedDate string   `xml:"firmwareReleasedDate"`
	BootVersion          string   `xml:"bootVersion"`
	BootReleasedDate     string   `xml:"bootReleasedDate"`
	HardwareVersion      string   `xml:"hardwareVersion"`
	EncoderVersion       string   `xml:"encoderVersion"`
	EncoderReleasedDate  string   `xml:"encoderReleasedDate"`
	DeviceType           string   `xml:"deviceType"`
	TelecontrolID        string   `xml:"telecontrolID"`
	Manufacturer         string   `xml:"manufacturer"`
}

// UpgradeStatus is the document of GET /ISAPI/System/upgradeStatus.
type UpgradeStatus struct {
	XMLName   xml.Name `xml:"upgradeStatus"`
	Version   string   `xml:"version,attr"`
	XMLNS     string   `xml:"xmlns,attr"`
	Upgrading bool     `xml:"upgrading"`
	Percent   int      `xml:"percent"`
}

// Handler returns the simulator's HTTP handler: ISAPI behind digest auth,
// and GET /debug/state without auth.
func (s *Sim) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// route names an ISAPI endpoint by its lower-case path.
var routes = map[string]string{
	"/isapi/system/deviceinfo":     "deviceInfo",
	"/isapi/system/updatefirmware": "updateFirmware",
	"/isapi/system/upgradestatus":  "upgradeStatus",
	"/isapi/system/reboot":         "reboot",
}

// healthRoutes are the endpoints that older firmware lacks (Config.OldFirmware).
var healthRoutes = map[string]string{
	"/isapi/contentmgmt/storage":                    "storage",
	"/isapi/contentmgmt/storage/hdd":                "storageHDD",
	"/isapi/contentmgmt/inputproxy/channels/status": "channelsStatus",
	"/isapi/system/configurationdata":               "configurationData",
}

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/debug/state":
		s.serveState(w, r)
		return
	case "/debug/faults":
		s.serveFaults(w, r)
		return
	}
	s.mu.Lock()
	if s.st.Bricked || s.st.Rebooting {
		bricked := s.st.Bricked
		s.mu.Unlock()
		s.cfg.Logger.WithFields(map[string]any{"path": r.URL.Path, "bricked": bricked}).Debug("not answering: the recorder is down")
		hangUp(w)
		return
	}
	slow := s.faults.SlowResponses
	s.mu.Unlock()
	if slow > 0 {
		t := time.NewTimer(slow)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	s.mu.Lock()
	if !s.authorize(w, r) {
		s.mu.Unlock()
		return
	}
	s.st.Requests++
	switch {
	case s.faults.Status5xxFor > 0:
		s.faults.Status5xxFor--
		s.notify()
		s.mu.Unlock()
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	case s.faults.BusyFor > 0:
		s.faults.BusyFor--
		s.notify()
		s.mu.Unlock()
		s.writeStatus(w, r, "deviceBusy")
		return
	}
	s.notify()
	s.mu.Unlock()

	p := strings.ToLower(strings.TrimSuffix(r.URL.Path, "/"))
	route := routes[p]
	if hr, ok := healthRoutes[p]; ok && !s.cfg.OldFirmware {
		route = hr
	}
	method := map[string]string{
		"deviceInfo":        http.MethodGet,
		"upgradeStatus":     http.MethodGet,
		"reboot":            http.MethodPut,
		"updateFirmware":    http.MethodPut,
		"storage":           http.MethodGet,
		"storageHDD":        http.MethodGet,
		"channelsStatus":    http.MethodGet,
		"configurationData": http.MethodGet,
	}[route]
	switch {
	case route == "":
		s.writeStatusHTTP(w, r, http.StatusNotFound, "notSupport")
		return
	case r.Method != method && !(route == "updateFirmware" && r.Method == http.MethodPost):
		w.Header().Set("Allow", method)
		s.writeStatusHTTP(w, r, http.StatusMethodNotAllowed, "methodNotAllowed")
		return
	}
	switch route {
	case "deviceInfo":
		s.serveDeviceInfo(w)
	case "upgradeStatus":
		s.serveUpgradeStatus(w)
	case "reboot":
		s.serveReboot(w, r)
	case "updateFirmware":
		s.serveUpload(w, r)
	case "storage", "storageHDD":
		s.serveStorage(w, route == "storageHDD")
	case "channelsStatus":
		s.serveChannels(w, r)
	case "configurationData":
		s.serveConfigExport(w, r)
	}
}

// authorize answers 401 (and counts failed logins) unless r carries valid
// credentials. The caller holds s.mu.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request) bool {
	now := s.now()
	if !s.lockedUntil.IsZero() && !now.Before(s.lockedUntil) {
		s.unlock()
		s.notify()
	}
	if !s.lockedUntil.IsZero() {
		s.unauthorized(w, r, false)
		return false
	}
	res, why := s.checkAuth(r)
	switch res {
	case authOK:
		if s.st.FailedLogins != 0 {
			s.st.FailedLogins = 0
			s.notify()
		}
		return true
	case authBad:
		s.cfg.Logger.WithField("why", why).Warn("malformed credentials")
		s.writeStatusHTTP(w, r, http.StatusBadRequest, "badAuthorization")
		return false
	case authFailed:
		s.loginFailed(why)
		s.notify()
	}
	s.unauthorized(w, r, res == authStale)
	return false
}

// unauthorized writes a 401 with a fresh challenge and the lock figures.
// The caller holds s.mu.
func (s *Sim) unauthorized(w http.ResponseWriter, r *http.Request, stale bool) {
	s.challenge(w.Header(), stale)
	rs := s.responseStatus(r, "badAuthorization")
	retry := max(s.cfg.LockAfter-s.st.FailedLogins, 0)
	lockLeft := 0
	rs.LockStatus = "unlock"
	if left := s.lockedUntil.Sub(s.now()); !s.lockedUntil.IsZero() && left > 0 {
		rs.LockStatus = "lock"
		retry = 0
		lockLeft = int((left + time.Second - 1) / time.Second)
	}
	rs.RetryTimes = &retry
	rs.ResLockTime = &lockLeft
	writeXML(w, http.StatusUnauthorized, rs)
}

func (s *Sim) responseStatus(r *http.Request, sub string) ResponseStatus {
	code := SubStatusCode(sub)
	return ResponseStatus{
		Version:       "2.0",
		XMLNS:         Namespaces[s.cfg.Namespace],
		RequestURL:    r.URL.RequestURI(),
		StatusCode:    code,
		StatusString:  statusStrings[code],
		SubStatusCode: sub,
	}
}

// writeStatus answers with a ResponseStatus and the HTTP status that goes
// with its statusCode.
func (s *Sim) writeStatus(w http.ResponseWriter, r *http.Request, sub string) {
	s.writeStatusHTTP(w, r, httpStatuses[SubStatusCode(sub)], sub)
}

func (s *Sim) writeStatusHTTP(w http.ResponseWriter, r *http.Request, status int, sub string) {
	writeXML(w, status, s.responseStatus(r, sub))
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "cannot encode XML: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", `application/xml; charset="UTF-8"`)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
	_, _ = w.Write([]byte("\n"))
}

func (s *Sim) serveDeviceInfo(w http.ResponseWriter) {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	id := md5.Sum([]byte(st.Serial))
	writeXML(w, http.StatusOK, DeviceInfo{
		Version:              "2.0",
		XMLNS:                Namespaces[s.cfg.Namespace],
		DeviceName:           s.cfg.DeviceName,
		DeviceID:             fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:16]),
		DeviceDescription:    "NVR",
		Model:                st.Model,
		SerialNumber:         st.Serial,
		MACAddress:           fmt.Sprintf("c0:56:e3:%02x:%02x:%02x", id[0], id[1], id[2]),
		FirmwareVersion:      st.Firmware,
		FirmwareReleasedDate: st.Build,
		BootVersion:          "V1.3.4",
		BootReleasedDate:     "100316",
		HardwareVersion:      "0x0",
		EncoderVersion:       "V5.0",
		EncoderReleasedDate:  "build 200316",
		DeviceType:           "NVR",
		TelecontrolID:        "255",
		Manufacturer:         "hikvision",
	})
}

func (s *Sim) serveUpgradeStatus(w http.ResponseWriter) {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	writeXML(w, http.StatusOK, UpgradeStatus{
		Version:   "2.0",
		XMLNS:     Namespaces[s.cfg.Namespace],
		Upgrading: st.Upgrading,
		Percent:   st.Percent,
	})
}

func (s *Sim) serveReboot(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.st.Upgrading || s.st.Receiving {
		s.mu.Unlock()
		s.writeStatus(w, r, "upgrading")
		return
	}
	s.mu.Unlock()
	s.writeStatus(w, r, "ok")
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.mu.Lock()
	s.startReboot()
	s.notify()
	s.mu.Unlock()
}

func (s *Sim) serveState(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	}
	b, err := json.MarshalIndent(s.State(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// serveFaults shows (GET) or replaces (PUT, a JSON Faults) the fault knobs.
func (s *Sim) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut:
		var f Faults
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			http.Error(w, "faults must be a JSON object with the fields of GET /debug/faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
	default:
		w.Header().Set("Allow", "GET, PUT")
		http.Error(w, "method not allowed: use GET or PUT", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.Faults())
}

// hangUp closes the client's connection without an answer, as a recorder
// that is down or cuts the link does.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
