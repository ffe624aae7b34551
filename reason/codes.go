package reason

// The codes of verify's safety policy.
const (
	ModelMismatch             Code = "model_mismatch"
	StandardFirmwareForbidden Code = "standard_firmware_forbidden"
	CustomVersionForbidden    Code = "custom_version_forbidden"
	ProtectedNeedsSecondProof Code = "protected_needs_second_proof"
	VersionUnparseable        Code = "version_unparseable"
	VariantUnknown            Code = "variant_unknown"
	ReleaseIncomplete         Code = "release_incomplete"
	RequiresNotMet            Code = "requires_not_met"
	DowngradeForbidden        Code = "downgrade_forbidden"
	ReinstallForbidden        Code = "reinstall_forbidden"
	SizeMismatch              Code = "size_mismatch"
	DigestMismatch            Code = "digest_mismatch"
	DigestNotPinned           Code = "digest_not_pinned"
	ImageIsZip                Code = "image_is_zip"
	ImageEncrypted            Code = "image_encrypted"
	ImageMalformed            Code = "image_malformed"
	PostInstallMismatch       Code = "post_install_mismatch"
)

// The codes of manifest's verification.
const (
	BadSignature      Code = "bad_signature"
	ThresholdNotMet   Code = "threshold_not_met"
	Expired           Code = "expired"
	NotYetValid       Code = "not_yet_valid"
	Rollback          Code = "rollback"
	Equivocation      Code = "equivocation"
	Malformed         Code = "malformed"
	TooLarge          Code = "too_large"
	WrongPayloadType  Code = "wrong_payload_type"
	UnsupportedSchema Code = "unsupported_schema"
)

// The codes of the manifest fetch and the image download.
const (
	Network         Code = "network"
	HTTPStatus      Code = "http_status"
	Stalled         Code = "stalled"
	TooLong         Code = "too_long"
	BadContentRange Code = "bad_content_range"
	RangeIgnored    Code = "range_ignored"
	NoSpace         Code = "no_space"
	LocalFile       Code = "local_file"
	BadRequest      Code = "bad_request"
	Canceled        Code = "canceled"
)

// The codes of the device backends (fwagent's own words; an ISAPI device's
// subStatusCode passes through as well).
const (
	BadCredentials     Code = "badCredentials"
	Locked             Code = "locked"
	Unreachable        Code = "unreachable"
	StaleNonce         Code = "staleNonce"
	BadReply           Code = "badReply"
	DeviceBusy         Code = "deviceBusy"
	Upgrading          Code = "upgrading"
	RebootRequired     Code = "rebootRequired"
	UploadTimeout      Code = "uploadTimeout"
	FlashTimeout       Code = "flashTimeout"
	FlashInterrupted   Code = "flashInterrupted"
	RebootTimeout      Code = "rebootTimeout"
	NotSupport         Code = "notSupport"
	BadDevType         Code = "badDevType"
	BadVersion         Code = "badVersion"
	BadLanguage        Code = "badLanguage"
	BadFlash           Code = "badFlash"
	IdentityUnreadable Code = "identityUnreadable"
	BadIdentity        Code = "badIdentity"
	NotConfigured      Code = "notConfigured"
	BadImage           Code = "badImage"
	BadStatus          Code = "badStatus"
	CommandTimeout     Code = "timeout"
	CommandFailed      Code = "commandFailed"
)

// The agent's own codes.
const (
	TermsNotAccepted      Code = "terms_not_accepted"
	CrashLoop             Code = "crash_loop"
	InstallInterrupted    Code = "install_interrupted"
	DeviceChanged         Code = "device_changed"
	DeviceError           Code = "device_error"
	Internal              Code = "internal_error"
	PendingImage          Code = "pending_image"
	StagedImageChanged    Code = "staged_image_changed"
	ProtectedUnresponsive Code = "protected_model_unresponsive"
	CredentialsRefused    Code = "credentials_refused"
	NoRelease             Code = "no_release_for_model"
	UpToDate              Code = "up_to_date"
	Quarantined           Code = "quarantined"
	NotInRollout          Code = "not_in_rollout"
	RolloutPaused         Code = "rollout_paused"
	SiteStopped           Code = "site_stopped_release"
	DuplicateRecorder     Code = "duplicate_recorder"
	FleetHold             Code = "fleet_hold"
	DiskBusy              Code = "disk_busy"
	UpgradeRunning        Code = "upgrade_running"
	HealthUnreadable      Code = "health_unreadable"
	BackupFailed          Code = "config_backup_failed"
	BackupNotSupported    Code = "config_backup_not_supported"
	InstalledDegraded     Code = "installed_degraded"
)

const protected = "iDS-9632NXI-I8/16S"

// registry is every code with its meaning and advice. A test fails when a
// Code* constant anywhere in fwagent has a value that is not here.
var registry = []Info{
	// verify
	{ModelMismatch, []Source{Verify}, "the device's model is not among the release's models", "publish the release for this model, or check the device address points at the right recorder", true},
	{StandardFirmwareForbidden, []Source{Verify}, "a standard (non-custom) release for " + protected + ", which standard firmware damages permanently (built-in rule)", "never offer standard firmware to this model: only custom 4.1.25 may go on it", true},
	{CustomVersionForbidden, []Source{Verify}, "a custom release for " + protected + " whose version is not written exactly 4.1.25 (built-in rule)", "only custom firmware 4.1.25 may go on this model; fix the release's version", true},
	{ProtectedNeedsSecondProof, []Source{Verify}, "a custom 4.1.25 release for " + protected + " rests on one proof only: it needs its SHA-256 pinned in the policy or signatures by two distinct trusted keys (built-in rule)", "pin the vendor's digest in policy.pins, or have a second integrator co-sign the manifest with fwctl sign", true},
	{VersionUnparseable, []Source{Verify}, "a version (installed, release or requires bound) cannot be read", "fix the release's version or requires range; check what the device reports", true},
	{VariantUnknown, []Source{Verify}, "the release's variant is neither custom nor standard", "set the release's variant to custom or standard", true},
	{ReleaseIncomplete, []Source{Verify}, "the release lacks models, a size or a SHA-256", "complete the release in the manifest (fwctl release fills them)", true},
	{RequiresNotMet, []Source{Verify}, "the installed version is outside the release's requires range", "install the intermediate release first, or widen requires if the vendor allows it", true},
	{DowngradeForbidden, []Source{Verify}, "the release is older than the installed version", "nothing to do; set policy.allow_downgrade only on the vendor's advice", true},
	{ReinstallForbidden, []Source{Verify}, "the release is the installed version", "nothing to do: the device is up to date", true},
	{SizeMismatch, []Source{Verify, Fetch}, "the image's size differs from the signed release's (or a server's body length does)", "check the release's size and the image on the mirrors; republish with the right size", true},
	{DigestMismatch, []Source{Verify, Fetch}, "the image's SHA-256 differs from the signed release's", "check the image on the mirrors against the vendor's; republish with the right digest", true},
	{DigestNotPinned, []Source{Verify}, "the operator pinned digests for this model and the release's or image's is not among them", "pin the new digest in policy.pins once you trust it, or publish the pinned image", true},
	{ImageIsZip, []Source{Verify}, "the image is the vendor's zip package, not the firmware image inside it", "extract digicap.dav from the zip and publish that file", true},
	{ImageEncrypted, []Source{Verify}, "the image is an HK20/HK30 encrypted container whose structure cannot be checked", "publish an unencrypted digicap.dav for this device", true},
	{ImageMalformed, []Source{Verify}, "the image is not a valid digicap.dav (truncated, bad magic or checksums)", "download the image from the vendor again and republish it", true},
	{PostInstallMismatch, []Source{Verify}, "after the install the device reports another model or version than the release's", "do not install anything more on it; have the device checked against its product page", true},
	// manifest
	{BadSignature, []Source{Manifest}, "a signature from a trusted key does not verify over the payload", "re-sign the manifest with fwctl sign; check nobody edited it after signing", true},
	{ThresholdNotMet, []Source{Manifest}, "fewer distinct trusted keys signed than manifest.threshold requires", "have enough trusted keys sign the manifest, or check manifest.keys", true},
	{Expired, []Source{Manifest}, "the manifest's expiry time has passed (by the device's clock)", "publish a freshly signed manifest; check the host's clock", true},
	{NotYetValid, []Source{Manifest}, "the manifest was issued beyond the allowed clock skew in the future", "check the host's clock (NTP) and the signer's", true},
	{Rollback, []Source{Manifest}, "the manifest's serial is below the last accepted one", "publish a manifest with a serial above the last one; never reuse old manifests", true},
	{Equivocation, []Source{Manifest}, "the serial equals the last accepted one but the payload differs", "every change needs a new serial: re-sign with a higher serial", true},
	{Malformed, []Source{Manifest}, "the envelope or payload is not well formed", "regenerate the manifest with fwctl and sign it again", true},
	{TooLarge, []Source{Manifest, Fetch}, "the manifest, its payload or an image size exceeds a limit", "check what the server serves; raise manifest.max_image_size only for a real image", true},
	{WrongPayloadType, []Source{Manifest}, "the envelope's payloadType is not fwagent's manifest type", "sign the manifest with fwctl sign", true},
	{UnsupportedSchema, []Source{Manifest}, "the payload's schema number is not one this agent reads", "upgrade fwagent, or publish a manifest in the schema it reads", true},
	// fetch
	{Network, []Source{Fetch}, "a connection failed (refused, reset, DNS, TLS, cut body)", "nothing: the next cycle retries; check the network if it persists", false},
	{HTTPStatus, []Source{Fetch}, "a server answered with an error status", "check the URL on the server; 5xx is retried, 404 means the file is missing there", false},
	{Stalled, []Source{Fetch}, "no byte arrived for download.stall_timeout", "nothing: the next mirror or cycle retries; check the mirror if it persists", false},
	{TooLong, []Source{Fetch}, "a server sent more bytes than declared", "fix the mirror or proxy: it serves something else than the release's image", false},
	{BadContentRange, []Source{Fetch}, "a server answered a resumed download with a Content-Range other than the one asked", "fix the mirror or proxy; the download retries from zero and never keeps its bytes", false},
	{RangeIgnored, []Source{Fetch}, "a server answered a Range request with the whole body (no longer a failure: the body is used from offset 0)", "nothing", false},
	{NoSpace, []Source{Fetch, Agent}, "not enough free disk space in the state directory for the image", "free space in state_dir (download.free_space_margin is kept free)", false},
	{LocalFile, []Source{Fetch}, "a file:// URL (an offline folder) could not be read", "check the folder given to --from holds the release's image", false},
	{BadRequest, []Source{Fetch}, "the download request is unusable (no URL, bad path)", "check the release's URLs in the manifest", false},
	{Canceled, []Source{Fetch}, "the agent was stopping", "nothing: the journal resumes the step on the next start", false},
	// device
	{BadCredentials, []Source{Device}, "the device refused the configured user name and password", "fix device.isapi username/password; the daemon sends refused credentials no more", false},
	{Locked, []Source{Device}, "the device has locked the account or this client after failed logins", "wait for the lock to expire, or unlock the account on the recorder", false},
	{Unreachable, []Source{Device}, "the device did not answer", "check the recorder is powered and reachable at device.isapi.url", false},
	{StaleNonce, []Source{Device}, "the device rejected a digest nonce as stale", "nothing: the backend logs in again", false},
	{BadReply, []Source{Device}, "the device answered something fwagent cannot read", "check device.isapi.url points at the recorder's ISAPI; send a support bundle", false},
	{DeviceBusy, []Source{Device}, "the device is busy", "nothing: the next cycle retries", false},
	{Upgrading, []Source{Device}, "the device is already upgrading", "let it finish; the agent settles the update by asking it", false},
	{RebootRequired, []Source{Device}, "the device holds a flashed image waiting for a reboot that this attempt did not send", "reboot the recorder by hand after checking what it holds; the agent never reboots into an image it did not prove", false},
	{UploadTimeout, []Source{Device}, "the upload did not finish within device.isapi.upload_timeout", "check the network to the recorder; raise upload_timeout for slow links", false},
	{FlashTimeout, []Source{Device}, "the device was still flashing after device.isapi.flash_timeout", "do not power it off; check it on site", false},
	{FlashInterrupted, []Source{Device}, "the device stopped flashing before 100% (a power loss): the image was not taken", "nothing: the next attempt proves the image again and retries", false},
	{RebootTimeout, []Source{Device}, "the device did not come back within the reboot timeout", "check the recorder on site; the next cycle asks it what it runs", false},
	{NotSupport, []Source{Device}, "the device does not support the request", "check the recorder's model and firmware are ones fwagent supports", false},
	{BadDevType, []Source{Device}, "the device refused the image as made for another device type", "publish the image made for this model", false},
	{BadVersion, []Source{Device}, "the device refused the image's version", "check the release's version against the vendor's upgrade path", false},
	{BadLanguage, []Source{Device}, "the device refused the image's language", "publish the image for the recorder's language", false},
	{BadFlash, []Source{Device}, "the device failed to write the image", "have the recorder checked on site before another try", false},
	{IdentityUnreadable, []Source{Device}, "the local backend could not read the identity file or command", "check device.local.identity_file or identity_command", false},
	{BadIdentity, []Source{Device}, "the local backend's identity is not valid JSON or too big", "fix what identity_file or identity_command prints", false},
	{NotConfigured, []Source{Device}, "a local backend command is not configured", "set device.local.install_command and reboot_command", false},
	{BadImage, []Source{Device}, "the local backend cannot read the image file", "check the state directory's images folder", false},
	{BadStatus, []Source{Device}, "the local backend's status command printed something unreadable", "fix device.local.status_command", false},
	{CommandTimeout, []Source{Device}, "a local backend command did not finish in time", "check the command; raise device.local.command_timeout", false},
	{CommandFailed, []Source{Device}, "a local backend command failed", "run the command by hand; see the agent log for its output", false},
	// agent
	{TermsNotAccepted, []Source{Agent}, "the operator has not accepted the vendor's terms, so nothing is downloaded", "read the vendor's terms, then set terms_accepted: true", true},
	{CrashLoop, []Source{Agent}, "a step was entered too often in one attempt: the agent gave up instead of looping", "read the agent log for the earlier failures; send a support bundle", false},
	{InstallInterrupted, []Source{Agent}, "the install did not take: the device runs its old firmware and is not flashing", "nothing: the next attempt proves the image again (bounded by max_attempts)", false},
	{DeviceChanged, []Source{Agent}, "another recorder answers at the device address than the one the update started on", "nothing: the agent starts over for the recorder that answers", false},
	{DeviceError, []Source{Agent}, "the device failed without a code of its own", "see the agent log", false},
	{Internal, []Source{Agent}, "an unexpected error of the agent or its state directory", "check state_dir is writable and has space; send a support bundle", false},
	{PendingImage, []Source{Agent}, "the device waits to reboot into an image this attempt did not send", "reboot the recorder by hand after checking what it holds", false},
	{StagedImageChanged, []Source{Agent}, "the verified image changed on disk before the install", "nothing: it is downloaded and proven again; check the disk if it repeats", false},
	{ProtectedUnresponsive, []Source{Agent}, "an " + protected + " stopped answering after its image was sent", "contact the vendor's support; do not power-cycle it repeatedly and do not try other images on it", false},
	{CredentialsRefused, []Source{Agent}, "the daemon did not contact the device: it refused the same credentials before", "fix device.isapi username/password (or run fwagent update --now once they match)", false},
	{NoRelease, []Source{Agent}, "no release in the manifest names the device's model", "nothing, or publish a release for this model", false},
	{UpToDate, []Source{Agent}, "the device runs the newest release offered", "nothing", false},
	{Quarantined, []Source{Agent}, "the release failed before and waits for a manifest with a higher serial", "see fwagent status for why; publish a fixed release with a higher serial", false},
	{NotInRollout, []Source{Agent}, "the rollout does not admit this device yet", "nothing: it is admitted when its stage starts", false},
	{SiteStopped, []Source{Agent}, "the site did not start this recorder's install: the release failed on install.stop_after_failures other recorders of the site", "find out why it failed on the others (fwagent status, reports); publish a fixed release with a higher serial", false},
	{DuplicateRecorder, []Source{Agent}, "a recorder answered with the model and serial of another recorder of the site: two entries of devices reach one recorder", "remove one of the two devices entries; a recorder is never updated twice", false},
	{DiskBusy, []Source{Agent}, "a disk of the recorder is formatting or repairing: the install waits", "nothing: the next cycle checks again; look at the recorder's disks if it lasts", false},
	{UpgradeRunning, []Source{Agent}, "the recorder is already flashing an image: the install waits", "nothing: let it finish; the next cycle checks again", false},
	{HealthUnreadable, []Source{Agent}, "the recorder's health reply (disks, channels) could not be read", "check the recorder's ISAPI answers; send a support bundle", false},
	{BackupFailed, []Source{Agent}, "the configuration backup that install.config_backup requires failed", "check the recorder's configuration export and the state directory's space", false},
	{BackupNotSupported, []Source{Agent}, "the recorder cannot export its configuration and install.config_backup is required", "set install.config_backup to best_effort or off for this recorder, or back it up by hand", false},
	{InstalledDegraded, []Source{Agent}, "the firmware is installed but channels or disks did not return to the baseline within confirm.health_timeout", "check the recorder's cameras and disks on site", false},
	{FleetHold, []Source{Agent}, "the fleet server holds the release (fwctl fleet pause or its auto-pause): no new install of it starts", "look at the release on the fleet server; resume it with fwctl fleet resume once the cause is fixed", false},
	{RolloutPaused, []Source{Agent}, "the integrator paused the release's rollout", "nothing: the update resumes when the rollout does", false},
}
