// Package config owns the agent's configuration file: its strict YAML
// decoding (unknown keys and bad values are errors naming the key and the
// line), its defaults, its validation, the maintenance window syntax and the
// resolution of secrets from files and environment variables.
//
// It must not open network connections, parse keys or manifests, or know
// about devices beyond their settings: other packages receive plain values.
package config

import (
	"fmt"
	"time"
)

// Backend names accepted in device.backend.
const (
	BackendISAPI = "isapi" // the recorder's HTTP API, over the network
	BackendLocal = "local" // files and commands on the recorder itself
)

// Redacted is the marker that replaces every secret in Redacted copies.
const Redacted = "<redacted>"

// Duration is a time.Duration; the alias exists so the YAML text form
// ("6h", "30m", "7d") has a name in the documentation.
type Duration = time.Duration

// Config is the whole agent configuration, after defaults and validation.
type Config struct {
	// TermsAccepted records that the operator accepted the vendor's terms;
	// nothing is downloaded until it is true.
	TermsAccepted bool `yaml:"terms_accepted"`
	// Device selects and configures the device backend (a site of one).
	Device Device `yaml:"device"`
	// Devices lists the recorders of a site, instead of Device.
	Devices []DeviceEntry `yaml:"devices,omitempty"`
	// Manifest says where the signed manifest comes from and whom to trust.
	Manifest Manifest `yaml:"manifest"`
	// StateDir holds the journal, downloads and the report queue.
	StateDir string `yaml:"state_dir"`
	// Poll sets how often the manifest is fetched.
	Poll Poll `yaml:"poll"`
	// Windows are the maintenance windows in local time; empty means installs
	// may happen at any time.
	Windows []Window `yaml:"maintenance_windows"`
	// Download tunes image downloads.
	Download Download `yaml:"download"`
	// Retry is the backoff shared by every retried request.
	Retry Retry `yaml:"retry"`
	// Policy holds the operator's local safety policy (may only be stricter).
	Policy Policy `yaml:"policy"`
	// Groups are the rollout groups this device belongs to (e.g. "pilot").
	Groups []string `yaml:"groups"`
	// Report configures delivery of reports to the integrator's server.
	Report Report `yaml:"report"`
	// Fleet names the fleet server the agent checks in with.
	Fleet Fleet `yaml:"fleet"`
	// Log configures the log files.
	Log Log `yaml:"log"`
	// Status configures the optional status endpoint.
	Status Status `yaml:"status"`
	// Install tunes the checks before an upload.
	Install Install `yaml:"install"`
	// Confirm tunes the checks after the reboot into new firmware.
	Confirm Confirm `yaml:"confirm"`
	// MaxAttempts is the number of failed attempts per release before the
	// release is quarantined until a manifest with a higher serial arrives.
	MaxAttempts int `yaml:"max_attempts"`

	file  string         // name used in error messages
	dir   string         // directory of the file, for relative paths ("" from Parse)
	lines map[string]int // key path -> line, for error messages
}

// Device selects the backend and holds the settings of each backend.
type Device struct {
	// Backend is BackendISAPI or BackendLocal.
	Backend string `yaml:"backend"`
	// ISAPI configures the HTTP backend.
	ISAPI ISAPI `yaml:"isapi"`
	// Local configures the on-device backend.
	Local Local `yaml:"local"`
}

// ISAPI holds the settings of the ISAPI (HTTP) backend.
type ISAPI struct {
	URL                string   `yaml:"url"`                     // e.g. https://192.0.2.10
	Username           string   `yaml:"username"`                // ISAPI account
	Password           string   `yaml:"password,omitempty"`      // secret, resolved from password_file / password_env by Load
	PasswordFile       string   `yaml:"password_file,omitempty"` // file holding the password
	PasswordEnv        string   `yaml:"password_env,omitempty"`  // environment variable holding the password
	AllowBasic         bool     `yaml:"allow_basic"`             // accept Basic auth if the device asks (https only)
	CAFile             string   `yaml:"ca_file,omitempty"`       // PEM CA bundle for the device certificate
	CertSHA256         string   `yaml:"cert_sha256,omitempty"`   // pinned certificate fingerprint, lowercase hex
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`    // do not check the certificate at all
	RequestTimeout     Duration `yaml:"request_timeout"`         // one ordinary request
	UploadTimeout      Duration `yaml:"upload_timeout"`          // the whole image upload
	FlashTimeout       Duration `yaml:"flash_timeout"`           // waiting for flashing to end
	RebootTimeout      Duration `yaml:"reboot_timeout"`          // waiting for the device to come back
	DownGrace          Duration `yaml:"down_grace"`              // waiting to see the device go down after a reboot
	PollInterval       Duration `yaml:"poll_interval"`           // upgradeStatus / readiness polling
	RetryMax           int      `yaml:"retry_max"`               // retries of idempotent requests
}

// Local holds the settings of the local backend: the agent runs on the
// recorder and uses files and commands. Commands are argv lists, never shell
// strings.
type Local struct {
	IdentityFile    string   `yaml:"identity_file,omitempty"`
	IdentityCommand []string `yaml:"identity_command,omitempty"`
	InstallCommand  []string `yaml:"install_command,omitempty"`
	RebootCommand   []string `yaml:"reboot_command,omitempty"`
	StatusCommand   []string `yaml:"status_command,omitempty"`
	InstallTimeout  Duration `yaml:"install_timeout"`
	CommandTimeout  Duration `yaml:"command_timeout"`
	RebootTimeout   Duration `yaml:"reboot_timeout"`
	PollInterval    Duration `yaml:"poll_interval"`
}

// Manifest says where manifests come from and which keys sign them.
type Manifest struct {
	URLs         []string `yaml:"urls"`           // http, https or file URLs, tried in order
	Keys         []string `yaml:"keys"`           // PEM public key files
	Threshold    int      `yaml:"threshold"`      // signatures needed from distinct keys
	MaxSkew      Duration `yaml:"max_skew"`       // tolerated clock skew for issued/expires
	MaxSize      int64    `yaml:"max_size"`       // bytes; larger manifests are refused
	MaxImageSize int64    `yaml:"max_image_size"` // bytes; larger releases are refused
	RetryMax     int      `yaml:"retry_max"`      // retries per url; 0 = one request
}

// Fleet configures the check-ins with the fleet server (docs/fleet.md).
type Fleet struct {
	URL             string   `yaml:"url,omitempty"`
	CheckInInterval Duration `yaml:"checkin_interval"`
	// Site names the site in the check-ins; "" sends none.
	Site string `yaml:"site,omitempty"`
}

// Poll sets the manifest polling rhythm.
type Poll struct {
	Interval Duration `yaml:"interval"`
	Jitter   Duration `yaml:"jitter"`
}

// Download tunes image downloads.
type Download struct {
	BandwidthLimit  int64    `yaml:"bandwidth_limit"`   // bytes per second, 0 = unlimited
	StallTimeout    Duration `yaml:"stall_timeout"`     // no byte for this long aborts the request
	RequestTimeout  Duration `yaml:"request_timeout"`   // until the response headers arrive
	RetryMax        int      `yaml:"retry_max"`         // retries per URL
	FreeSpaceMargin int64    `yaml:"free_space_margin"` // bytes kept free besides the image
}

// Policy is the operator's local policy; it may only make the built-in rules
// stricter.
type Policy struct {
	AllowDowngrade bool                `yaml:"allow_downgrade"`
	Pins           map[string][]string `yaml:"pins,omitempty"` // model -> allowed lowercase sha256 hex digests
}

// Report configures report delivery.
type Report struct {
	URL       string `yaml:"url,omitempty"`
	Token     string `yaml:"token,omitempty"` // secret, resolved from token_file / token_env by Load
	TokenFile string `yaml:"token_file,omitempty"`
	TokenEnv  string `yaml:"token_env,omitempty"`
	QueueMax  int    `yaml:"queue_max"`
	RetryMax  int    `yaml:"retry_max"` // retries of one upload; 0 = one request
}

// Retry is the one backoff of every retried request: the pause before
// retry n is WaitMin * 2^(n-1), at most WaitMax.
type Retry struct {
	WaitMin Duration `yaml:"wait_min"`
	WaitMax Duration `yaml:"wait_max"`
}

// Log configures the log files.
// Install tunes what happens before each upload.
type Install struct {
	// ConfigBackup is BackupRequired, BackupBestEffort or BackupOff.
	ConfigBackup string `yaml:"config_backup"`
	// MaxParallel is how many recorders of a site may upload or flash at once.
	MaxParallel int `yaml:"max_parallel"`
	// StopAfterFailures is how many failed installs of one release in a
	// site stop that release on the remaining recorders.
	StopAfterFailures int `yaml:"stop_after_failures"`
}

// Values of install.config_backup.
const (
	BackupRequired   = "required"    // a failed or unsupported export defers the install
	BackupBestEffort = "best_effort" // a failed export is logged and the install goes on
	BackupOff        = "off"         // no backup
)

// Confirm tunes the health check after the reboot.
type Confirm struct {
	// HealthTimeout bounds the wait for the recorder's channels and disks
	// to return to the baseline; 0 checks once.
	HealthTimeout Duration `yaml:"health_timeout"`
	// HealthPoll is the pause between health readings.
	HealthPoll Duration `yaml:"health_poll"`
	// ChannelTolerance is how many baseline channels may stay offline.
	ChannelTolerance int `yaml:"channel_tolerance"`
}

// Log configures the agent's log files and their retention.
type Log struct {
	Dir           string `yaml:"dir"`
	Level         string `yaml:"level"`
	MaxSizeMB     int    `yaml:"max_size_mb"`
	RetentionDays int    `yaml:"retention_days"`
	MaxBackups    int    `yaml:"max_backups"`
}

// Status configures the optional status endpoint.
type Status struct {
	Listen    string `yaml:"listen,omitempty"`     // e.g. 127.0.0.1:9876; empty = off
	TokenFile string `yaml:"token_file,omitempty"` // bearer token file; required off loopback
	Token     string `yaml:"-"`                    // secret, read from TokenFile by Load; never rendered
}

// Default returns a configuration holding every default value of Keys.
// Parse starts from it, so a key written with a zero value (jitter: 0s)
// keeps that value.
func Default() *Config {
	c := &Config{}
	for _, k := range Keys {
		if k.apply != nil {
			k.apply(c)
		}
	}
	return c
}

// InWindow reports whether t falls inside a maintenance window. With no
// windows configured every time is inside.
func (c *Config) InWindow(t time.Time) bool {
	if len(c.Windows) == 0 {
		return true
	}
	for _, w := range c.Windows {
		if w.Contains(t) {
			return true
		}
	}
	return false
}

// NextWindow returns the earliest time at or after t when installing is
// allowed: t itself when t is inside a window (or no windows are set), else
// the start of the next window.
func (c *Config) NextWindow(t time.Time) time.Time {
	if len(c.Windows) == 0 {
		return t
	}
	var best time.Time
	for _, w := range c.Windows {
		n := w.Next(t)
		if n.IsZero() {
			continue
		}
		if best.IsZero() || n.Before(best) {
			best = n
		}
	}
	return best
}

// String renders the settings for %v with the password replaced by Redacted,
// so that printing a configuration never prints the secret.
func (i ISAPI) String() string {
	type plain ISAPI // without the String method
	c := plain(i)
	if c.Password != "" {
		c.Password = Redacted
	}
	return fmt.Sprintf("%+v", c)
}

// String renders the settings for %v with the token replaced by Redacted.
func (r Report) String() string {
	type plain Report
	c := plain(r)
	if c.Token != "" {
		c.Token = Redacted
	}
	return fmt.Sprintf("%+v", c)
}

// String renders the settings for %v with the token replaced by Redacted.
func (s Status) String() string {
	type plain Status
	c := plain(s)
	if c.Token != "" {
		c.Token = Redacted
	}
	return fmt.Sprintf("%+v", c)
}
