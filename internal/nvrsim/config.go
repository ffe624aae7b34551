package nvrsim

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Namespaces maps each supported Config.Namespace to the XML namespace the
// simulated recorder writes into its documents.
var Namespaces = map[string]string{
	"isapi":     "http://www.isapi.org/ver20/XMLSchema",
	"hikvision": "http://www.hikvision.com/ver20/XMLSchema",
	"std-cgi":   "http://www.std-cgi.org/ver20/XMLSchema",
	"psia":      "urn:psialliance-org",
}

// ProtectedModel is the model that the simulator damages when it flashes
// anything but the custom firmware ProtectedVersion. The simulator keeps its
// own copy of the rule (rather than importing verify's) so that it stays an
// independent judge of the agent.
const ProtectedModel = "iDS-9632NXI-I8/16S"

// ProtectedVersion is the only firmware version ProtectedModel survives, and
// only in the custom variant.
const ProtectedVersion = "4.1.25"

// Config describes the simulated recorder. Zero fields get the defaults
// documented on each field when New fills them in.
type Config struct {
	Model    string // default ProtectedModel
	Firmware string // running firmware, "V4.1.20" or "4.1.20"; default "V4.1.20"
	Build    string // firmware build date, "230619" or "build 230619"; default "build 230619"
	Variant  string // running firmware variant, "custom" or "standard"; default "custom"
	Serial   string // default "SIM0123456789"
	User     string // default "admin"
	Password string // default "admin12345"

	// Namespace picks the XML namespace: "isapi" (default), "hikvision",
	// "std-cgi" or "psia".
	Namespace string
	// DeviceName is deviceInfo's deviceName; default "Network Video Recorder".
	DeviceName string
	// Realm is the digest realm; default the model.
	Realm string
	// AllowBasic also offers and accepts HTTP Basic auth, as some firmware does.
	AllowBasic bool

	// RebootDelay is how long the recorder stays unreachable after a reboot
	// (0 = it is back at once).
	RebootDelay time.Duration
	// FlashDuration is how long flashing takes after an upload, with the
	// percent rising over it (0 = done by the time the upload is answered).
	FlashDuration time.Duration

	// LockAfter is the number of failed logins in a row that locks the
	// account; default 7.
	LockAfter int
	// LockFor is how long a lock lasts; default 10 minutes.
	LockFor time.Duration
	// NonceTTL is how long a digest nonce stays valid; default 5 minutes.
	// An older nonce gets a 401 with stale=TRUE (not a failed login).
	NonceTTL time.Duration

	// TLS makes Start serve HTTPS with a freshly generated self-signed
	// certificate (Server.Fingerprint gives its SHA-256).
	TLS bool
	// TempDir holds uploads while they are checked; default os.TempDir().
	// Uploads are streamed to disk and removed once inspected.
	TempDir string

	// Logger receives the simulator's log lines; default discards them.
	Logger logrus.FieldLogger
	// Now is the clock; default time.Now. A test seam only.
	Now func() time.Time
	// Inspect reads an uploaded image; default InspectImage. A test seam only.
	Inspect func(path string, size int64) (Image, error)
}

// Faults are the failure knobs. Set them at any time with Sim.SetFaults; the
// counters (Status5xxFor, BusyFor) count down as requests consume them.
type Faults struct {
	// DropUploadAfter closes the connection once that many upload body bytes
	// arrived (0 = never). If it is at least the image size the whole image
	// arrives, flashing starts, and only the answer is lost, as real
	// recorders do when they start flashing.
	DropUploadAfter int64 `json:"drop_upload_after,omitempty"`
	// SlowResponses delays every ISAPI answer by this much.
	SlowResponses time.Duration `json:"slow_responses,omitempty"`
	// Status5xxFor answers the next N authenticated ISAPI requests with a
	// plain HTTP 500 (a crashed web server, not a ResponseStatus).
	Status5xxFor int `json:"status_5xx_for,omitempty"`
	// BusyFor answers the next N authenticated ISAPI requests with HTTP 503
	// and ResponseStatus statusCode 2, subStatusCode deviceBusy.
	BusyFor int `json:"busy_for,omitempty"`
	// RejectUpload, when set, answers every upload (after receiving it) with
	// a ResponseStatus carrying this subStatusCode, e.g. "badVersion",
	// "badLanguage", "rebootRequired", "upgrading".
	RejectUpload string `json:"reject_upload,omitempty"`
	// NeverReturnFromReboot keeps the recorder down after the next reboot.
	NeverReturnFromReboot bool `json:"never_return_from_reboot,omitempty"`
	// ReturnOnOldFirmware makes the recorder come back from a reboot still
	// running the firmware it had, discarding the flashed image.
	ReturnOnOldFirmware bool `json:"return_on_old_firmware,omitempty"`
	// PutNotSupported answers PUT uploads with HTTP 403 and ResponseStatus
	// statusCode 4 (Invalid Operation), subStatusCode notSupport, so that
	// a client falls back to POST multipart.
	PutNotSupported bool `json:"put_not_supported,omitempty"`
}

// withDefaults returns cfg with every zero field filled in, or an error
// naming the bad field.
func (cfg Config) withDefaults() (Config, error) {
	def := func(p *string, v string) {
		if strings.TrimSpace(*p) == "" {
			*p = v
		}
	}
	def(&cfg.Model, ProtectedModel)
	def(&cfg.Firmware, "V4.1.20")
	def(&cfg.Build, "230619")
	def(&cfg.Variant, "custom")
	def(&cfg.Serial, "SIM0123456789")
	def(&cfg.User, "admin")
	def(&cfg.Password, "admin12345")
	def(&cfg.Namespace, "isapi")
	def(&cfg.DeviceName, "Network Video Recorder")
	def(&cfg.Realm, cfg.Model)
	cfg.Firmware = firmwareString(cfg.Firmware)
	cfg.Build = buildString(cfg.Build)
	cfg.Namespace = strings.ToLower(strings.TrimSpace(cfg.Namespace))
	if _, ok := Namespaces[cfg.Namespace]; !ok {
		return cfg, fmt.Errorf("nvrsim: unknown namespace %q: use isapi, hikvision, std-cgi or psia", cfg.Namespace)
	}
	cfg.Variant = strings.ToLower(strings.TrimSpace(cfg.Variant))
	if cfg.Variant != "custom" && cfg.Variant != "standard" {
		return cfg, fmt.Errorf("nvrsim: unknown variant %q: use custom or standard", cfg.Variant)
	}
	if cfg.LockAfter <= 0 {
		cfg.LockAfter = 7
	}
	if cfg.LockFor <= 0 {
		cfg.LockFor = 10 * time.Minute
	}
	if cfg.NonceTTL <= 0 {
		cfg.NonceTTL = 5 * time.Minute
	}
	if cfg.RebootDelay < 0 || cfg.FlashDuration < 0 {
		return cfg, fmt.Errorf("nvrsim: negative reboot delay or flash duration")
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	if cfg.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		cfg.Logger = l
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Inspect == nil {
		cfg.Inspect = InspectImage
	}
	return cfg, nil
}

// firmwareString writes a version the way recorders report it: "V4.1.20".
func firmwareString(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(strings.TrimPrefix(v, "V"), "v")
	if v == "" {
		return ""
	}
	return "V" + v
}

// buildString writes a build date the way recorders report it: "build 230619".
func buildString(b string) string {
	b = strings.TrimSpace(b)
	if b == "" {
		return ""
	}
	if strings.HasPrefix(strings.ToLower(b), "build") {
		return "build " + strings.TrimSpace(b[len("build"):])
	}
	return "build " + b
}

// isProtected reports whether model is ProtectedModel (trimmed, any case).
func isProtected(model string) bool {
	return strings.EqualFold(strings.TrimSpace(model), ProtectedModel)
}

// survives reports whether ProtectedModel survives flashing img.
func survives(img Image) bool {
	v := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(img.Version), "V"), "v")
	return strings.EqualFold(strings.TrimSpace(img.Variant), "custom") && v == ProtectedVersion
}
