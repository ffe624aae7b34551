package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/fwagent/fwagent/fleet"
	"github.com/fwagent/fwagent/manifest"
)

// Keys is the one definition of every configuration key: its path in the
// file, its type, its default, its bounds and a line of documentation.
// Everything else comes from it: Default, the decoder (which keys exist,
// how each value is read, on which line it was written), the bound checks,
// and docs/reference/config.md (see Reference).
//
// Adding a key is one entry here plus its field in Config (with a yaml tag
// equal to the last part of the path): TestEveryConfigFieldHasOneKey keeps
// the two in step, TestReferenceIsUpToDate keeps the docs in step.
//
// Sections (mappings of keys) are entries too, so that they are documented.
// A list of mappings (devices: one entry per recorder, devices.go) is one
// entry whose elements are decoded against the device.* entries of this
// table, so a device key is still defined once.
var Keys = []Key{
	boolean("terms_accepted", func(c *Config) *bool { return &c.TermsAccepted }, false,
		"you accepted the vendor's General Terms of Use; until true the agent checks and reports but downloads nothing"),
	text("state_dir", func(c *Config) *string { return &c.StateDir }, DefaultStateDir, true,
		"holds the journal, the downloaded image and the report queue; one agent per directory (a lock file enforces it)"),
	integer("max_attempts", func(c *Config) *int { return &c.MaxAttempts }, 3, 1,
		"failed attempts per release before it is quarantined until a manifest with a higher serial arrives"),
	groupList("groups", func(c *Config) *[]string { return &c.Groups },
		"rollout groups this device belongs to (a release's rollout may name them)"),
	windowList("maintenance_windows", func(c *Config) *[]Window { return &c.Windows },
		`when installs may start, local time: "DAYS HH:MM-HH:MM" (daily, Sat, Mon-Fri, Sat,Sun); an end before the start crosses midnight; empty = any time`),

	section("device", "the recorder and how the agent talks to it"),
	text("device.backend", func(c *Config) *string { return &c.Device.Backend }, "", false,
		"required: isapi (the recorder's HTTP API, over the network) or local (the agent runs on the recorder)"),

	section("device.isapi", "the isapi backend (backend: isapi)"),
	text("device.isapi.url", func(c *Config) *string { return &c.Device.ISAPI.URL }, "", false,
		"the recorder's address, e.g. https://192.0.2.10 (https strongly recommended); required with backend isapi"),
	text("device.isapi.username", func(c *Config) *string { return &c.Device.ISAPI.Username }, "", false,
		"the ISAPI account; required with backend isapi"),
	secretText("device.isapi.password", func(c *Config) *string { return &c.Device.ISAPI.Password },
		"the password inline (avoid: the file becomes a secret); give exactly one of password, password_file, password_env"),
	text("device.isapi.password_file", func(c *Config) *string { return &c.Device.ISAPI.PasswordFile }, "", false,
		"a file holding the password (recommended; mode 0600, trailing newline ignored)"),
	text("device.isapi.password_env", func(c *Config) *string { return &c.Device.ISAPI.PasswordEnv }, "", false,
		"an environment variable holding the password"),
	boolean("device.isapi.allow_basic", func(c *Config) *bool { return &c.Device.ISAPI.AllowBasic }, false,
		"accept HTTP Basic auth if the device asks for it (digest is always preferred); https:// only"),
	text("device.isapi.ca_file", func(c *Config) *string { return &c.Device.ISAPI.CAFile }, "", false,
		"a PEM file with the CA that signed the recorder's certificate"),
	text("device.isapi.cert_sha256", func(c *Config) *string { return &c.Device.ISAPI.CertSHA256 }, "", false,
		"the SHA-256 fingerprint of the recorder's certificate (64 hex characters, colons allowed): pins it"),
	boolean("device.isapi.insecure_skip_verify", func(c *Config) *bool { return &c.Device.ISAPI.InsecureSkipVerify }, false,
		"do not check the certificate at all; never together with cert_sha256 or ca_file"),
	duration("device.isapi.request_timeout", func(c *Config) *Duration { return &c.Device.ISAPI.RequestTimeout }, 30*time.Second, true,
		"timeout of one ordinary request (deviceInfo, upgradeStatus, reboot)"),
	duration("device.isapi.upload_timeout", func(c *Config) *Duration { return &c.Device.ISAPI.UploadTimeout }, 30*time.Minute, true,
		"timeout of the whole image upload"),
	duration("device.isapi.flash_timeout", func(c *Config) *Duration { return &c.Device.ISAPI.FlashTimeout }, 30*time.Minute, true,
		"how long the device may take to flash the image after the upload"),
	duration("device.isapi.reboot_timeout", func(c *Config) *Duration { return &c.Device.ISAPI.RebootTimeout }, 15*time.Minute, true,
		"how long the device may take to come back after a reboot"),
	duration("device.isapi.down_grace", func(c *Config) *Duration { return &c.Device.ISAPI.DownGrace }, 60*time.Second, true,
		"after the reboot command, how long to wait to see the recorder go down (at most reboot_timeout)"),
	duration("device.isapi.poll_interval", func(c *Config) *Duration { return &c.Device.ISAPI.PollInterval }, 5*time.Second, true,
		"how often upgradeStatus and readiness are polled"),
	integer("device.isapi.retry_max", func(c *Config) *int { return &c.Device.ISAPI.RetryMax }, 3, 0,
		"retries of an idempotent request (deviceInfo, upgradeStatus) on a transient failure; 0 = one request, no retry; refused credentials are never retried"),

	section("device.local", "the local backend (backend: local); commands are argument lists, never shell strings"),
	text("device.local.identity_file", func(c *Config) *string { return &c.Device.Local.IdentityFile }, "", false,
		"a file with the identity as key=value lines (model=, serial=, firmware_version=) or a JSON object"),
	textList("device.local.identity_command", func(c *Config) *[]string { return &c.Device.Local.IdentityCommand },
		"a command printing the identity as key=value lines (instead of identity_file)"),
	textList("device.local.install_command", func(c *Config) *[]string { return &c.Device.Local.InstallCommand },
		"the command that installs an image; {image} is replaced by its path (else appended); exit 0 done, 75 try later, else failed"),
	textList("device.local.reboot_command", func(c *Config) *[]string { return &c.Device.Local.RebootCommand },
		"the command that reboots the recorder"),
	textList("device.local.status_command", func(c *Config) *[]string { return &c.Device.Local.StatusCommand },
		`a command printing "upgrading=true|false" and "percent=N" lines`),
	duration("device.local.install_timeout", func(c *Config) *Duration { return &c.Device.Local.InstallTimeout }, time.Hour, true,
		"timeout of install_command"),
	duration("device.local.command_timeout", func(c *Config) *Duration { return &c.Device.Local.CommandTimeout }, 60*time.Second, true,
		"timeout of the other commands"),
	duration("device.local.reboot_timeout", func(c *Config) *Duration { return &c.Device.Local.RebootTimeout }, 15*time.Minute, true,
		"how long the recorder may take to come back after a reboot"),
	duration("device.local.poll_interval", func(c *Config) *Duration { return &c.Device.Local.PollInterval }, 5*time.Second, true,
		"how often status_command is polled"),

	devicesKey(),

	section("manifest", "where the signed manifest comes from and whom to trust"),
	textList("manifest.urls", func(c *Config) *[]string { return &c.Manifest.URLs },
		"where the signed manifest is fetched, tried in order: http://, https:// or file:// (offline mirrors, USB sticks)"),
	textList("manifest.keys", func(c *Config) *[]string { return &c.Manifest.Keys },
		"PEM files of the public keys trusted to sign manifests; required when urls is set"),
	integer("manifest.threshold", func(c *Config) *int { return &c.Manifest.Threshold }, 1, 1,
		"how many distinct keys must have signed a manifest (at most the number of keys)"),
	duration("manifest.max_skew", func(c *Config) *Duration { return &c.Manifest.MaxSkew }, 5*time.Minute, false,
		"tolerated clock difference when checking a manifest's issued and expires times"),
	size("manifest.max_size", func(c *Config) *int64 { return &c.Manifest.MaxSize }, DefaultManifestMaxSize, true, false,
		"manifests larger than this are refused; the default is the size limit of a signed envelope"),
	size("manifest.max_image_size", func(c *Config) *int64 { return &c.Manifest.MaxImageSize }, 4<<30, true, false,
		"releases whose image is larger than this are refused"),
	integer("manifest.retry_max", func(c *Config) *int { return &c.Manifest.RetryMax }, 4, 0,
		"retries of the manifest request per url on a transient failure (network error, 408, 429, 5xx) before the next url; 0 = one request"),

	section("poll", "how often the manifest is fetched"),
	duration("poll.interval", func(c *Config) *Duration { return &c.Poll.Interval }, 6*time.Hour, true,
		"how often the manifest is fetched; with fleet.url set, poll.interval + poll.jitter is at most "+formatDuration(maxCheckInInterval)+" (the longest interval a check-in can announce)"),
	duration("poll.jitter", func(c *Config) *Duration { return &c.Poll.Jitter }, 30*time.Minute, false,
		"a random delay up to this much is added to each poll so a fleet does not ask all at once"),

	section("download", "image downloads"),
	size("download.bandwidth_limit", func(c *Config) *int64 { return &c.Download.BandwidthLimit }, 0, false, true,
		"bandwidth cap for image downloads, http(s):// and file:// alike (2MB/s, 500KiB/s or bytes per second); 0 = unlimited"),
	duration("download.stall_timeout", func(c *Config) *Duration { return &c.Download.StallTimeout }, 60*time.Second, true,
		"abort a download request that received no byte for this long; it is then resumed"),
	duration("download.request_timeout", func(c *Config) *Duration { return &c.Download.RequestTimeout }, 30*time.Second, true,
		"timeout until the response headers arrive"),
	integer("download.retry_max", func(c *Config) *int { return &c.Download.RetryMax }, 5, 0,
		"retries per image url on a transient failure (each resumes the partial file) before the next url; 0 = one GET per url"),
	size("download.free_space_margin", func(c *Config) *int64 { return &c.Download.FreeSpaceMargin }, 64<<20, false, false,
		"disk space kept free in state_dir besides the image"),

	section("retry", "the one backoff of every retried request (device, manifest, image, report)"),
	duration("retry.wait_min", func(c *Config) *Duration { return &c.Retry.WaitMin }, time.Second, true,
		"pause before the first retry of a request; it doubles with each retry"),
	duration("retry.wait_max", func(c *Config) *Duration { return &c.Retry.WaitMax }, 30*time.Second, true,
		"longest pause between retries, also the cap on a server's Retry-After"),

	section("policy", "the operator's local safety policy; it can only make the built-in rules stricter"),
	boolean("policy.allow_downgrade", func(c *Config) *bool { return &c.Policy.AllowDowngrade }, false,
		"allow installing an older version than the one running"),
	pinMap("policy.pins", func(c *Config) *map[string][]string { return &c.Policy.Pins },
		"per model, the only image digests (SHA-256, hex) this device may install; for iDS-9632NXI-I8/16S, a pin of the release's digest is also the second proof that it is the custom firmware (docs/security.md)"),

	section("report", "delivery of reports (each step change and each result) to the integrator's server"),
	text("report.url", func(c *Config) *string { return &c.Report.URL }, "", false,
		"where reports are POSTed as JSON; empty = no reports are sent or queued"),
	secretText("report.token", func(c *Config) *string { return &c.Report.Token },
		"the bearer token inline (avoid); give exactly one of token, token_file, token_env"),
	text("report.token_file", func(c *Config) *string { return &c.Report.TokenFile }, "", false,
		"a file holding the bearer token (recommended)"),
	text("report.token_env", func(c *Config) *string { return &c.Report.TokenEnv }, "", false,
		"an environment variable holding the bearer token"),
	integer("report.queue_max", func(c *Config) *int { return &c.Report.QueueMax }, 1000, 1,
		"reports waiting for the server are kept in state_dir/reports; beyond this many the oldest are dropped (and counted)"),
	integer("report.retry_max", func(c *Config) *int { return &c.Report.RetryMax }, 3, 0,
		"retries of one report upload on a transient failure; a report still not delivered stays queued for the next cycle"),

	section("fleet", "check-ins with the fleet server (docs/fleet.md): inventory, signed evidence and holds"),
	text("fleet.url", func(c *Config) *string { return &c.Fleet.URL }, "", false,
		"the fleet server (fwctl fleet serve), like https://fleet.example:8471; empty = no check-ins. The device key is created in state_dir on first start"),
	checkInInterval("fleet.checkin_interval", func(c *Config) *Duration { return &c.Fleet.CheckInInterval }, time.Hour,
		"the agent checks in at its polls, at most this often (and always before an upload); it tells the server the longer of this and poll.interval + poll.jitter, and the server marks a device stale after three of those without a check-in"),
	label("fleet.site", func(c *Config) *string { return &c.Fleet.Site },
		"the site name the fleet server shows with this agent's recorders (fwctl fleet devices, the web page); empty = none (never the host name, which may name a person)"),

	section("install", "checks before each upload"),
	choice("install.config_backup", func(c *Config) *string { return &c.Install.ConfigBackup }, BackupRequired, []string{BackupRequired, BackupBestEffort, BackupOff},
		"back up the recorder's configuration (System/configurationData) into state_dir/backups before every upload: required defers the install when the export fails or is not supported, best_effort logs and goes on, off skips it"),
	integer("install.max_parallel", func(c *Config) *int { return &c.Install.MaxParallel }, 1, 1,
		"at most this many recorders upload or flash at the same time"),
	integer("install.stop_after_failures", func(c *Config) *int { return &c.Install.StopAfterFailures }, 2, 1,
		"after this many failed installs of the same release in the site, the release is not installed on the remaining recorders (until a manifest with a higher serial arrives; kept in state_dir across restarts)"),

	section("confirm", "checks after the reboot into the new firmware (besides the exact version)"),
	duration("confirm.health_timeout", func(c *Config) *Duration { return &c.Confirm.HealthTimeout }, 10*time.Minute, false,
		"how long the recorder's channels and disks may take to return to the baseline read before the upload; otherwise the result is installed_degraded; 0 = check once"),
	duration("confirm.health_poll", func(c *Config) *Duration { return &c.Confirm.HealthPoll }, 15*time.Second, true,
		"pause between health readings while waiting for the channels and disks to return"),
	integer("confirm.channel_tolerance", func(c *Config) *int { return &c.Confirm.ChannelTolerance }, 0, 0,
		"how many channels online before the upload may stay offline after it without installed_degraded"),

	section("log", "the log files"),
	text("log.dir", func(c *Config) *string { return &c.Log.Dir }, DefaultLogDir, true,
		"log files (JSON lines) go here"),
	text("log.level", func(c *Config) *string { return &c.Log.Level }, "info", false,
		"error, warn, info, debug or trace"),
	integer("log.max_size_mb", func(c *Config) *int { return &c.Log.MaxSizeMB }, 10, 1,
		"a log file is rotated when it reaches this many megabytes"),
	integer("log.retention_days", func(c *Config) *int { return &c.Log.RetentionDays }, 30, 1,
		"rotated files older than this many days are deleted"),
	integer("log.max_backups", func(c *Config) *int { return &c.Log.MaxBackups }, 10, 0,
		"at most this many rotated files are kept; 0 = no count limit"),

	section("status", "the optional status endpoint (/v1/status, /v1/support-bundle, /metrics)"),
	text("status.listen", func(c *Config) *string { return &c.Status.Listen }, "", false,
		"serve the status endpoint here, e.g. 127.0.0.1:9876; empty = off; a non-loopback address requires token_file"),
	text("status.token_file", func(c *Config) *string { return &c.Status.TokenFile }, "", false,
		"a file holding the bearer token clients must send"),
}

// Defaults that other packages name (the table above is where they apply).
const (
	DefaultPath            = "/etc/fwagent/agent.yaml"
	DefaultStateDir        = "/var/lib/fwagent"
	DefaultLogDir          = "/var/log/fwagent"
	DefaultManifestMaxSize = manifest.MaxEnvelopeSize // a larger manifest cannot verify
)

// Key is the definition of one configuration key (or section of keys).
type Key struct {
	// Path is the dotted path as written in the file, "device.isapi.retry_max".
	Path string
	// Type names the value's type in the reference: text, boolean, integer,
	// duration, size, bandwidth, list of text, list of windows, map, section.
	Type string
	// Default is the default as written in the file; "" for none.
	Default string
	// Bounds says in words which values are accepted; "" when any value
	// of the type is.
	Bounds string
	// Doc is one line: what the key is for, and what 0 or empty means.
	Doc string

	decode func(d *decoder, n *yaml.Node, key string, c *Config) // reads an explicit value
	apply  func(c *Config)                                       // sets the default
	check  func(c *Config) string                                // the bound check: "" or what is wrong
}

// Section reports whether the key is a mapping of other keys.
func (k Key) Section() bool { return k.Type == "section" }

// lookup finds a key by its path.
func lookup(path string) (Key, bool) {
	i, ok := keyIndex[path]
	if !ok {
		return Key{}, false
	}
	return Keys[i], true
}

var keyIndex, keyChildren = indexKeys(Keys)

// indexKeys maps each path to its entry and each section ("" for the top
// level) to the names of its keys.
func indexKeys(keys []Key) (map[string]int, map[string][]string) {
	index := map[string]int{}
	children := map[string][]string{}
	for i, k := range keys {
		index[k.Path] = i
		parent, name := "", k.Path
		if j := strings.LastIndex(k.Path, "."); j >= 0 {
			parent, name = k.Path[:j], k.Path[j+1:]
		}
		children[parent] = append(children[parent], name)
	}
	return index, children
}

func section(path, doc string) Key {
	return Key{Path: path, Type: "section", Doc: doc}
}

func text(path string, ref func(*Config) *string, def string, required bool, doc string) Key {
	k := Key{Path: path, Type: "text", Default: def, Doc: doc,
		apply: func(c *Config) { *ref(c) = def }}
	if required {
		k.Bounds = "not empty"
		k.check = func(c *Config) string {
			if strings.TrimSpace(*ref(c)) == "" {
				if def != "" {
					return "must not be empty (default " + def + ")"
				}
				return "must not be empty"
			}
			return ""
		}
	}
	k.decode = func(d *decoder, n *yaml.Node, key string, c *Config) {
		if n.Kind != yaml.ScalarNode {
			d.fail(n, key, "expected a text value, got %s", describe(n))
			return
		}
		*ref(c) = n.Value
	}
	return k
}

// label is a text key a check-in carries to the fleet server as a label
// (fleet.site): empty, or text the fleet protocol takes (fleet.CheckString,
// at most fleet.MaxIDLen bytes, no control characters).
func label(path string, ref func(*Config) *string, doc string) Key {
	k := text(path, ref, "", false, doc)
	k.Bounds = fmt.Sprintf("at most %d bytes, no control characters", fleet.MaxIDLen)
	k.check = func(c *Config) string {
		if err := fleet.CheckString(path, *ref(c), fleet.MaxIDLen); err != nil {
			_, msg := fleetProblem(err)
			return msg
		}
		return ""
	}
	return k
}

// groupList is the list of rollout groups, which a check-in carries to
// the fleet server: validateGroups checks it (no group empty or twice,
// and fleet.CheckList when fleet.url is set).
func groupList(path string, ref func(*Config) *[]string, doc string) Key {
	k := textList(path, ref, doc)
	k.Bounds = fmt.Sprintf("none empty, none twice; with fleet.url set, at most %d, each 1-%d bytes without control characters", fleet.MaxListItems, fleet.MaxListItemLen)
	return k
}

// fleetProblem turns the fleet protocol's refusal of a configured value
// (an error of fleet.CheckString or fleet.CheckList) into a config error:
// the field it names (a list's item: groups[2]) and what is wrong, what
// to do and why.
func fleetProblem(err error) (field, msg string) {
	var ie *fleet.InvalidError
	if !errors.As(err, &ie) {
		return "", err.Error()
	}
	return ie.Field, ie.Problem + " (a rule of the fleet protocol: check-ins carry this value)"
}

// maxCheckInInterval is the longest interval a check-in can announce
// (fleet.MaxIntervalSeconds): the server refuses a check-in announcing a
// longer one.
const maxCheckInInterval = Duration(fleet.MaxIntervalSeconds) * time.Second

// checkInInterval is fleet.checkin_interval: a positive duration a
// check-in can announce (at most maxCheckInInterval).
func checkInInterval(path string, ref func(*Config) *Duration, def Duration, doc string) Key {
	k := duration(path, ref, def, true, doc)
	positive := k.check
	k.Bounds += ", at most " + formatDuration(maxCheckInInterval)
	k.check = func(c *Config) string {
		if msg := positive(c); msg != "" {
			return msg
		}
		if v := *ref(c); v > maxCheckInInterval {
			return fmt.Sprintf("%s is longer than %s, the longest interval a check-in can announce to the fleet server: shorten it", formatDuration(v), formatDuration(maxCheckInInterval))
		}
		return ""
	}
	return k
}

// choice is a text key that takes one of options.
func choice(path string, ref func(*Config) *string, def string, options []string, doc string) Key {
	k := text(path, ref, def, false, doc)
	k.Type = "one of " + strings.Join(options, ", ")
	k.check = func(c *Config) string {
		v := *ref(c)
		for _, o := range options {
			if v == o {
				return ""
			}
		}
		return fmt.Sprintf("%q is not one of %s", v, strings.Join(options, ", "))
	}
	return k
}

// secretText is a text key whose value is a secret: never a default, and
// the reference says to prefer the _file form.
func secretText(path string, ref func(*Config) *string, doc string) Key {
	k := text(path, ref, "", false, doc)
	k.Type = "text (secret)"
	return k
}

func boolean(path string, ref func(*Config) *bool, def bool, doc string) Key {
	return Key{Path: path, Type: "boolean", Default: strconv.FormatBool(def), Doc: doc,
		apply: func(c *Config) { *ref(c) = def },
		decode: func(d *decoder, n *yaml.Node, key string, c *Config) {
			var v bool
			if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&v) != nil {
				d.fail(n, key, "%s is not true or false", describe(n))
				return
			}
			*ref(c) = v
		}}
}

func integer(path string, ref func(*Config) *int, def, min int, doc string) Key {
	return Key{Path: path, Type: "integer", Default: strconv.Itoa(def), Bounds: fmt.Sprintf("at least %d", min), Doc: doc,
		apply: func(c *Config) { *ref(c) = def },
		check: func(c *Config) string {
			if v := *ref(c); v < min {
				return fmt.Sprintf("%d is too small (at least %d)", v, min)
			}
			return ""
		},
		decode: func(d *decoder, n *yaml.Node, key string, c *Config) {
			var v int
			if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
				d.fail(n, key, "%s is not a whole number", describe(n))
				return
			}
			*ref(c) = v
		}}
}

// duration is a key holding a Duration; positive refuses 0.
func duration(path string, ref func(*Config) *Duration, def Duration, positive bool, doc string) Key {
	k := Key{Path: path, Type: "duration", Default: formatDuration(def), Bounds: "0 or more", Doc: doc,
		apply: func(c *Config) { *ref(c) = def },
		check: func(c *Config) string {
			if *ref(c) < 0 {
				return "must not be negative"
			}
			return ""
		},
		decode: func(d *decoder, n *yaml.Node, key string, c *Config) {
			if n.Kind != yaml.ScalarNode {
				d.fail(n, key, "%s is not a duration (use e.g. 6h, 30m)", describe(n))
				return
			}
			v, err := ParseDuration(n.Value)
			if err != nil {
				d.fail(n, key, "%v", err)
				return
			}
			*ref(c) = v
		}}
	if positive {
		k.Bounds = "more than 0"
		k.check = func(c *Config) string {
			if *ref(c) <= 0 {
				return "must be more than zero (use e.g. 30s, 5m)"
			}
			return ""
		}
	}
	return k
}

// size is a key holding a byte count (perSecond: a bandwidth, "2MB/s");
// positive refuses 0.
func size(path string, ref func(*Config) *int64, def int64, positive, perSecond bool, doc string) Key {
	k := Key{Path: path, Type: "size", Default: formatSize(def), Bounds: "0 or more", Doc: doc,
		apply: func(c *Config) { *ref(c) = def },
		check: func(c *Config) string {
			if *ref(c) < 0 {
				return "must not be negative"
			}
			return ""
		},
		decode: func(d *decoder, n *yaml.Node, key string, c *Config) {
			if n.Kind != yaml.ScalarNode {
				d.fail(n, key, "%s is not a size", describe(n))
				return
			}
			v, err := ParseSize(n.Value, perSecond)
			if err != nil {
				d.fail(n, key, "%v", err)
				return
			}
			*ref(c) = v
		}}
	if perSecond {
		k.Type = "bandwidth"
		k.Default += "/s"
		if def == 0 {
			k.Default = "0"
		}
	}
	if positive {
		k.Bounds = "more than 0"
		k.check = func(c *Config) string {
			if *ref(c) <= 0 {
				return "must be more than zero (e.g. 1MiB)"
			}
			return ""
		}
	}
	return k
}

func textList(path string, ref func(*Config) *[]string, doc string) Key {
	return Key{Path: path, Type: "list of text", Doc: doc,
		apply: func(c *Config) { *ref(c) = nil },
		decode: func(d *decoder, n *yaml.Node, key string, c *Config) {
			*ref(c) = d.strList(n, key)
		}}
}

func windowList(path string, ref func(*Config) *[]Window, doc string) Key {
	return Key{Path: path, Type: "list of windows", Doc: doc,
		apply: func(c *Config) { *ref(c) = nil },
		decode: func(d *decoder, n *yaml.Node, key string, c *Config) {
			*ref(c) = d.windows(n, key)
		}}
}

func pinMap(path string, ref func(*Config) *map[string][]string, doc string) Key {
	return Key{Path: path, Type: "map of model to list of sha256", Doc: doc,
		apply: func(c *Config) { *ref(c) = nil },
		decode: func(d *decoder, n *yaml.Node, key string, c *Config) {
			*ref(c) = d.pins(n, key)
		}}
}

// formatDuration writes a duration the way the file does: 6h, 30m, 90s, 7d.
func formatDuration(d Duration) string {
	if d == 0 {
		return "0s"
	}
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	for _, u := range []struct {
		unit Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.unit == 0 {
			return fmt.Sprintf("%d%s", d/u.unit, u.name)
		}
	}
	return d.String()
}

// formatSize writes a byte count with the largest binary unit that divides
// it, else as a plain number.
func formatSize(n int64) string {
	for _, u := range []struct {
		unit int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n != 0 && n%u.unit == 0 {
			return fmt.Sprintf("%d%s", n/u.unit, u.name)
		}
	}
	return strconv.FormatInt(n, 10)
}
