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

	// Disks are the recorder's disks; default two healthy 4 TB disks.
	// A disk's Status is the word ContentMgmt/Storage reports ("ok",
	// "formating", "error", ...).
	Disks []Disk
	// Channels is the number of IP camera channels, all online at start;
	// default 8; negative: none (channel status answers notSupport, as a
	// recorder without IP channels does).
	Channels int
	// ChannelReturnDelay is how long after the recorder is back from a
	// reboot its channels come back online (0 = at once).
	ChannelReturnDelay time.Duration
	// ConfigSize is the size in bytes of the opaque configuration file
	// System/configurationData exports; default 64 KiB.
	ConfigSize int
	// OldFirmware makes the recorder predate the health and backup
	// endpoints: ContentMgmt/Storage, InputProxy/channels/status and
	// System/configurationData answer 404 notSupport.
	OldFirmware bool

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
	// LoseFlashAt makes the recorder lose power when a flash reaches this
	// percent (1-99; 0 = never): it comes back on its old firmware, not
	// upgrading, at 0%, as real recorders do.
	LoseFlashAt int `json:"lose_flash_at,omitempty"`
	// NeverReturnFromReboot keeps the recorder down after the next reboot.
	NeverReturnFromReboot bool `json:"never_return_from_reboot,omitempty"`
	// ReturnOnOldFirmware makes the recorder come back from a reboot still
	// running the firmware it had, discarding the flashed image.
	ReturnOnOldFirmware bool `json:"return_on_old_firmware,omitempty"`
	// PutNotSupported answers PUT uploads with HTTP 403 and ResponseStatus
	// statusCode 4 (Invalid Operation), subStatusCode notSupport, so that
	// a client falls back to POST multipart.
	PutNotSupported bool `json:"put_not_supported,omitempty"`

	// DiskStatus overrides what ContentMgmt/Storage reports for disks, by
	// disk id, e.g. {"1": "formating"}, while it is set.
	DiskStatus map[string]string `json:"disk_status,omitempty"`
	// DiskStatusAfterFlash sets disks' status, by disk id, for good once the
	// recorder comes back from a reboot into a flashed image, e.g.
	// {"2": "error"}.
	DiskStatusAfterFlash map[string]string `json:"disk_status_after_flash,omitempty"`
	// ChannelsLostAfterFlash is how many channels (the highest ids) never
	// come back online after a reboot into a flashed image.
	ChannelsLostAfterFlash int `json:"channels_lost_after_flash,omitempty"`
	// ExportFails answers configuration exports with a plain HTTP 500.
	ExportFails bool `json:"export_fails,omitempty"`
	// ExportNotSupported answers configuration exports with HTTP 403 and
	// ResponseStatus statusCode 4, subStatusCode notSupport.
	ExportNotSupported bool `json:"export_not_supported,omitempty"`
}

// clone copies f, maps included, so that the copy shares nothing.
func (f Faults) clone() Faults {
	f.DiskStatus = cloneMap(f.DiskStatus)
	f.DiskStatusAfterFlash = cloneMap(f.DiskStatusAfterFlash)
	return f
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Disk is one simulated disk, as ContentMgmt/Storage reports it.
type Disk struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	CapacityMB int64  `json:"capacity_mb"`
	FreeMB     int64  `json:"free_mb"`
	Property   string `json:"property"` // RW, RO, Redund
}

// Channel is one simulated camera channel.
type Channel struct {
	ID     int  `json:"id"`
	Online bool `json:"online"`
	Lost   bool `json:"lost,omitempty"` // never comes back (ChannelsLostAfterFlash)
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
	if cfg.Disks == nil {
		cfg.Disks = []Disk{
			{ID: 1, Name: "hdd1", Status: "ok", CapacityMB: 3815447, FreeMB: 120034, Property: "RW"},
			{ID: 2, Name: "hdd2", Status: "ok", CapacityMB: 3815447, FreeMB: 98211, Property: "RW"},
		}
	} else {
		cfg.Disks = append([]Disk(nil), cfg.Disks...)
	}
	for i := range cfg.Disks {
		d := &cfg.Disks[i]
		if d.ID == 0 {
			d.ID = i + 1
		}
		def(&d.Name, fmt.Sprintf("hdd%d", d.ID))
		def(&d.Status, "ok")
		def(&d.Property, "RW")
		if d.CapacityMB == 0 {
			d.CapacityMB, d.FreeMB = 3815447, 120034
		}
	}
	switch {
	case cfg.Channels == 0:
		cfg.Channels = 8
	case cfg.Channels < 0:
		cfg.Channels = -1
	case cfg.Channels > 512:
		return cfg, fmt.Errorf("nvrsim: %d channels: give at most 512", cfg.Channels)
	}
	if cfg.ConfigSize <= 0 {
		cfg.ConfigSize = 64 << 10
	}
	if cfg.ChannelReturnDelay < 0 {
		return cfg, fmt.Errorf("nvrsim: negative channel return delay")
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

// survives reports whether ProtectedModel survives flashing img: only the
// custom firmware whose version is written exactly 4.1.25, V4.1.25 or
// v4.1.25. 4.1.25.0, 04.01.25 or a version with spaces or a build is other
// firmware and damages the recorder. The rule is written out here, not
// imported, and agrees exactly with verify.IsProtectedVersion.
func survives(img Image) bool {
	v := img.Version
	if v != "" && (v[0] == 'V' || v[0] == 'v') {
		v = v[1:]
	}
	return strings.EqualFold(strings.TrimSpace(img.Variant), "custom") && v == ProtectedVersion
}
