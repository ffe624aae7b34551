package device

import (
	"context"
	"io"
	"strings"
)

// HealthReader is implemented by backends that can tell whether the recorder
// records: its disks, its camera channels and whether it is flashing now.
// The agent reads it before an upload (to defer while a disk is busy and to
// keep a baseline) and after the reboot (to see the recorder back at work).
// A backend that does not implement it, or returns an error wrapping
// ErrNotSupported, has no health to offer; the agent goes on without.
type HealthReader interface {
	// Health reads the recorder's health. Parts the recorder does not
	// support are left out and named in Health.Unsupported; when no part
	// is supported the error wraps ErrNotSupported.
	Health(ctx context.Context) (Health, error)
}

// ConfigExporter is implemented by backends that can export the recorder's
// configuration file, for a backup before each upload. The file is opaque
// (vendor-encrypted) and holds credentials: callers store it 0600 and never
// log or ship it.
type ConfigExporter interface {
	// ExportConfig streams the configuration file to w and returns the
	// bytes written. A recorder without the export returns an error
	// wrapping ErrNotSupported; on any error w may hold a partial file.
	ExportConfig(ctx context.Context, w io.Writer) (n int64, err error)
}

// Health parts, as named in Health.Unsupported.
const (
	PartDisks    = "disks"
	PartChannels = "channels"
)

// Health is one reading of the recorder's health.
type Health struct {
	// Disks are the recorder's disks (local and network), in its order.
	// Nil when the disks could not be read (see Unsupported).
	Disks []Disk `json:"disks,omitempty"`
	// Channels are the recorder's camera channels, in its order. Nil when
	// the recorder has no channel status (see Unsupported).
	Channels []Channel `json:"channels,omitempty"`
	// Upgrade says whether the recorder is flashing an image now.
	Upgrade InstallStatus `json:"upgrade"`
	// Unsupported names the parts (PartDisks, PartChannels) the recorder
	// does not report.
	Unsupported []string `json:"unsupported,omitempty"`
}

// Supports reports whether the reading includes part.
func (h Health) Supports(part string) bool {
	for _, p := range h.Unsupported {
		if p == part {
			return false
		}
	}
	return true
}

// OnlineChannels returns the ids of the channels that are online.
func (h Health) OnlineChannels() []string {
	var ids []string
	for _, c := range h.Channels {
		if c.Online {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// BusyDisks returns the disks whose state asks to wait (formatting,
// repairing).
func (h Health) BusyDisks() []Disk {
	var out []Disk
	for _, d := range h.Disks {
		if d.Class() == DiskBusy {
			out = append(out, d)
		}
	}
	return out
}

// Disk is one of the recorder's disks. Sizes are in MB as the recorder
// reports them.
type Disk struct {
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Kind       string `json:"kind,omitempty"` // "hdd" or "nas"
	Status     string `json:"status"`         // as reported, e.g. "ok", "formating"
	CapacityMB int64  `json:"capacity_mb,omitempty"`
	FreeMB     int64  `json:"free_mb,omitempty"`
	Property   string `json:"property,omitempty"` // RW, RO, Redund
}

// Class classifies the disk's status.
func (d Disk) Class() DiskClass { return ClassifyDisk(d.Status) }

// Channel is one camera channel. The camera's address is personal data
// where IP addresses are, so it is not kept.
type Channel struct {
	ID     string `json:"id"`
	Online bool   `json:"online"`
	Detect string `json:"detect,omitempty"` // chanDetectResult, e.g. "connect"
}

// DiskClass is what a disk's status means for an install.
type DiskClass string

// Disk classes, from best to worst (see DiskClass.Rank).
const (
	// DiskHealthy disks record (ok, idle, sleeping).
	DiskHealthy DiskClass = "healthy"
	// DiskBusy disks are being formatted or repaired: an install waits.
	DiskBusy DiskClass = "busy"
	// DiskUnknown disks report a status fwagent does not know. Unknown is
	// not healthy.
	DiskUnknown DiskClass = "unknown"
	// DiskBad disks do not record (error, offline, unformatted, ...).
	DiskBad DiskClass = "bad"
)

// Rank orders the classes from best (0) to worst, for "no disk is worse
// than before".
func (c DiskClass) Rank() int {
	switch c {
	case DiskHealthy:
		return 0
	case DiskBusy:
		return 1
	case DiskUnknown:
		return 2
	}
	return 3
}

// diskClasses maps lower-case status words seen on recorders (some
// misspelt by the firmware) to their class.
var diskClasses = map[string]DiskClass{
	"ok":            DiskHealthy,
	"idle":          DiskHealthy,
	"sleeping":      DiskHealthy,
	"formating":     DiskBusy,
	"formatting":    DiskBusy,
	"reparing":      DiskBusy,
	"repairing":     DiskBusy,
	"error":         DiskBad,
	"abnormal":      DiskBad,
	"offline":       DiskBad,
	"smartfailed":   DiskBad,
	"mismatch":      DiskBad,
	"notexist":      DiskBad,
	"exception":     DiskBad,
	"unformatted":   DiskBad,
	"uninitialized": DiskBad,
	"locked":        DiskBad,
}

// ClassifyDisk classifies a disk status word, without regard to case or
// surrounding spaces. A word it does not know is DiskUnknown, never healthy.
func ClassifyDisk(status string) DiskClass {
	if c, ok := diskClasses[strings.ToLower(strings.TrimSpace(status))]; ok {
		return c
	}
	return DiskUnknown
}
