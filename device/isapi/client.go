// Package isapi is the device backend for Hikvision recorders reached over
// their ISAPI HTTP interface: identity from /ISAPI/System/deviceInfo, image
// upload to /ISAPI/System/updateFirmware, flashing progress from
// /ISAPI/System/upgradeStatus and reboot through /ISAPI/System/reboot.
//
// It owns authentication (Digest, Basic only when allowed) with lockout
// safety: a refused login is never repeated, so the recorder's admin account
// is never locked by fwagent; TLS with system roots, a CA file or a pinned
// certificate fingerprint; and the mapping of the device's ResponseStatus
// replies to typed errors. It must not decide whether an image may be
// installed: that is the verify package's job, done before Install is called.
// Credentials never appear in its logs, errors or String output.
package isapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/device"
	"github.com/fwagent/fwagent/internal/httplog"
	"github.com/fwagent/fwagent/internal/redact"
	"github.com/fwagent/fwagent/internal/retry"
)

// ISAPI paths used by the client.
const (
	PathDeviceInfo     = "/ISAPI/System/deviceInfo"
	PathUpdateFirmware = "/ISAPI/System/updateFirmware"
	PathUpgradeStatus  = "/ISAPI/System/upgradeStatus"
	PathReboot         = "/ISAPI/System/reboot"
)

// Config configures a Client. Every value is explicit (the agent passes
// the config's device.isapi keys, whose defaults live in agent/config):
// New refuses a zero timeout or poll interval rather than guess one.
type Config struct {
	BaseURL            string // http(s)://host[:port], no credentials in it
	Username           string
	Password           string
	AllowBasic         bool   // allow Basic auth when the device offers only Basic
	CAFile             string // PEM file of CAs to trust instead of the system roots
	CertSHA256         string // pinned SHA-256 fingerprint of the device certificate (hex, colons allowed)
	InsecureSkipVerify bool   // accept any certificate; logged loudly; for tests only

	RequestTimeout time.Duration // one API request
	UploadTimeout  time.Duration // the image upload
	FlashTimeout   time.Duration // from the end of the upload until flashing ends
	RebootTimeout  time.Duration // from WaitReady's start until the device answers again
	DownGrace      time.Duration // how long WaitReady waits to see the device go down (at most RebootTimeout/2)
	PollInterval   time.Duration // between upgradeStatus and deviceInfo polls
	// RetryMax is how often an idempotent request (deviceInfo,
	// upgradeStatus) is retried after a transient failure: 0 means one
	// request. This client is the only layer that retries them.
	RetryMax     int
	RetryWaitMin time.Duration // pause before the first retry, doubling (retry.Policy); 0 = none
	RetryWaitMax time.Duration // longest pause

	Logger logrus.FieldLogger // default: discard
}

// Client talks to one recorder over ISAPI. It is safe for concurrent use,
// though the agent runs one operation at a time.
type Client struct {
	cfg    Config
	base   *url.URL
	log    logrus.FieldLogger
	auth   *authTransport
	api    *retryablehttp.Client // API requests with retries
	once   *retryablehttp.Client // API requests without retries (polls, reboot)
	upload *http.Client          // the image body: never retried

	postOnly     atomic.Bool // the device refused a PUT upload: use POST from now on
	serialWarned atomic.Bool // the missing serialNumber was logged
}

var _ device.Device = (*Client)(nil)

// ErrConfig means the Config is unusable; the message names the field.
var ErrConfig = errors.New("isapi config")

// New checks cfg and returns a Client. It does not contact the device.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: url %q must look like https://192.0.2.10 or http://nvr.local:8080", ErrConfig, redact.URL(cfg.BaseURL))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: url must not carry credentials: put them in username and password", ErrConfig)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: url %q must be the device's address only, without a path", ErrConfig, cfg.BaseURL)
	}
	u.Path = ""
	if cfg.Username == "" || cfg.Password == "" {
		return nil, fmt.Errorf("%w: username and password are required (the device locks accounts after failed logins, so fwagent will not try empty ones)", ErrConfig)
	}
	if u.Scheme == "http" && (cfg.CAFile != "" || cfg.CertSHA256 != "" || cfg.InsecureSkipVerify) {
		return nil, fmt.Errorf("%w: ca_file, cert_sha256 and insecure_skip_verify need an https url", ErrConfig)
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"request_timeout", cfg.RequestTimeout}, {"upload_timeout", cfg.UploadTimeout}, {"flash_timeout", cfg.FlashTimeout},
		{"reboot_timeout", cfg.RebootTimeout}, {"poll_interval", cfg.PollInterval}} {
		if d.v <= 0 {
			return nil, fmt.Errorf("%w: %s is %s: give a duration more than zero", ErrConfig, d.name, d.v)
		}
	}
	if cfg.RetryMax < 0 || cfg.RetryWaitMin < 0 || cfg.RetryWaitMax < cfg.RetryWaitMin {
		return nil, fmt.Errorf("%w: retry_max %d, retry waits %s..%s: give a count of 0 or more and 0 <= min <= max", ErrConfig, cfg.RetryMax, cfg.RetryWaitMin, cfg.RetryWaitMax)
	}
	if cfg.DownGrace > cfg.RebootTimeout/2 {
		cfg.DownGrace = cfg.RebootTimeout / 2
	}
	log := cfg.Logger
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	// A site gateway names each recorder in the device field already;
	// a lone agent's lines name the device by its address.
	if e, ok := log.(*logrus.Entry); !ok || e.Data["device"] == nil {
		log = log.WithField("device", u.Host)
	}
	if cfg.InsecureSkipVerify {
		log.Warn("TLS CERTIFICATE VERIFICATION IS OFF (insecure_skip_verify): anyone on the network path can impersonate the device and read its credentials; pin the certificate with cert_sha256 instead")
	}
	if cfg.AllowBasic && u.Scheme == "http" {
		log.Warn("allow_basic over plain http: if the device falls back to Basic auth, the password crosses the network in clear text")
	}

	tr := cleanhttp.DefaultPooledTransport()
	tr.TLSClientConfig = tc
	tr.Proxy = nil // a recorder is on the local network; never send its credentials through a proxy
	c := &Client{cfg: cfg, base: u, log: log}
	c.auth = &authTransport{
		base:       tr,
		username:   cfg.Username,
		password:   cfg.Password,
		allowBasic: cfg.AllowBasic,
		probePath:  PathDeviceInfo,
		log:        log,
		now:        time.Now,
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	httpc := &http.Client{Transport: c.auth, Timeout: cfg.RequestTimeout, CheckRedirect: noRedirect}
	c.api = &retryablehttp.Client{
		HTTPClient:   httpc,
		Logger:       httplog.Leveled(log),
		RetryWaitMin: cfg.RetryWaitMin,
		RetryWaitMax: cfg.RetryWaitMax,
		RetryMax:     cfg.RetryMax,
		CheckRetry:   retryPolicy,
		Backoff:      retry.Backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	c.once = &retryablehttp.Client{
		HTTPClient:   httpc,
		RetryMax:     0,
		CheckRetry:   retryPolicy,
		Backoff:      retry.Backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	c.upload = &http.Client{Transport: c.auth, CheckRedirect: noRedirect}
	return c, nil
}

// String names the device without any credential.
func (c *Client) String() string {
	return "isapi " + c.base.String()
}

// retryPolicy retries what go-retryablehttp retries by default (connection
// errors, 5xx but 501, 429), and never a refused login, a certificate
// mismatch or a reply the client cannot use.
func retryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	var ae *AuthError
	if errors.As(err, &ae) || errors.Is(err, ErrCertMismatch) || errors.Is(err, ErrBadReply) || errors.Is(err, ErrBasicNotAllowed) || errors.Is(err, ErrStaleNonce) {
		return false, err
	}
	if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		return false, nil
	}
	return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
}

// do sends one API request and returns the reply's status and body (capped).
// Transport failures come back as device.ErrUnreachable unless they are
// credential, certificate or context errors.
func (c *Client) do(ctx context.Context, rc *retryablehttp.Client, method, path string) (int, []byte, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, method, c.base.String()+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/xml, text/xml")
	resp, err := rc.Do(req)
	if err != nil {
		if resp != nil {
			drain(resp)
		}
		return 0, nil, transportError(ctx, path, err)
	}
	defer resp.Body.Close()
	body, err := readCapped(resp.Body)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return 0, nil, fmt.Errorf("%s: %w", path, err)
		}
		return 0, nil, transportError(ctx, path, err)
	}
	return resp.StatusCode, body, nil
}

// transportError classes an error that prevented a reply.
func transportError(ctx context.Context, path string, err error) error {
	var ae *AuthError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, ErrCertMismatch), errors.Is(err, ErrBadReply), errors.Is(err, ErrBasicNotAllowed), errors.Is(err, ErrStaleNonce):
		return err
	}
	err = stripURL(err)
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return fmt.Errorf("%s: the device's certificate is not trusted (%w): set ca_file, or pin it with cert_sha256", path, certErr.Err)
	}
	// %w keeps the cause (a *net.OpError, say) in the chain: Reboot tells
	// a device it never reached from one that hung up after the request.
	return fmt.Errorf("%w: %s: %w", device.ErrUnreachable, path, err)
}

// stripURL drops the *url.Error around a transport error: the URL holds no
// secret, but the path is enough. Only an outermost *url.Error is dropped,
// so that what a caller wrapped around it stays.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// get fetches path and returns the body of a 2xx reply, or the reply as an
// error.
func (c *Client) get(ctx context.Context, rc *retryablehttp.Client, path string) ([]byte, error) {
	status, body, err := c.do(ctx, rc, http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if status < 200 || status > 299 {
		return nil, replyError(path, status, body)
	}
	return body, nil
}

// Identify reads the device's identity from deviceInfo.
func (c *Client) Identify(ctx context.Context) (device.Identity, error) {
	id, err := c.identify(ctx, c.api)
	return id, wrap("identify", err)
}

func (c *Client) identify(ctx context.Context, rc *retryablehttp.Client) (device.Identity, error) {
	body, err := c.get(ctx, rc, PathDeviceInfo)
	if err != nil {
		return device.Identity{}, err
	}
	id, err := parseIdentity(body)
	if err == nil && id.Serial == "" && c.serialWarned.CompareAndSwap(false, true) {
		c.log.Warn("deviceInfo has no serialNumber: staged rollouts cannot tell this device apart (every device without a serial falls in the same bucket, and include and exclude lists cannot name it); check the device's ISAPI reply")
	}
	return id, err
}

// InstallStatus reads upgradeStatus.
func (c *Client) InstallStatus(ctx context.Context) (device.InstallStatus, error) {
	st, err := c.status(ctx, c.api)
	return st, wrap("status", err)
}

func (c *Client) status(ctx context.Context, rc *retryablehttp.Client) (device.InstallStatus, error) {
	body, err := c.get(ctx, rc, PathUpgradeStatus)
	if err != nil {
		return device.InstallStatus{}, err
	}
	return parseUpgradeStatus(body)
}

// Reboot asks the device to restart. It is sent once, never retried: a
// retried reboot could restart the device a second time. A connection that
// breaks after the request was sent counts as accepted (the device may
// restart before it answers); WaitReady tells.
func (c *Client) Reboot(ctx context.Context) error {
	c.log.Info("asking the device to reboot")
	status, body, err := c.do(ctx, c.once, http.MethodPut, PathReboot)
	if err != nil {
		if errors.Is(err, device.ErrUnreachable) && !isDialError(err) {
			c.log.WithError(err).Warn("the connection broke after the reboot request was sent; assuming the device is restarting")
			return nil
		}
		return wrap("reboot", err)
	}
	if status < 200 || status > 299 {
		return wrap("reboot", replyError(PathReboot, status, body))
	}
	if doc, err := parseDocument(body); err == nil {
		if se := doc.statusError(status); se != nil {
			return wrap("reboot", se)
		}
	}
	return nil
}

func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// WaitReady waits until the device stops answering (or DownGrace passes),
// then until deviceInfo answers again, and returns the identity. The whole
// wait is bounded by RebootTimeout. Refused credentials stop it at once.
func (c *Client) WaitReady(ctx context.Context) (device.Identity, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RebootTimeout)
	defer cancel()
	tick := time.NewTicker(c.cfg.PollInterval)
	defer tick.Stop()
	grace := time.NewTimer(c.cfg.DownGrace)
	defer grace.Stop()

	// Phase 1: until it goes down.
	down := false
	for !down {
		_, err := c.identify(ctx, c.once)
		switch {
		case err == nil:
		case fatalWhileWaiting(err):
			return device.Identity{}, wrap("wait", err)
		default:
			c.log.WithError(err).Debug("device went down")
			down = true
			continue
		}
		select {
		case <-tick.C:
		case <-grace.C:
			c.log.Info("the device kept answering during the grace period; assuming it restarted between polls")
			down = true
		case <-ctx.Done():
			return device.Identity{}, c.waitErr(parent, nil)
		}
	}

	// Phase 2: until it answers again.
	var last error
	for {
		id, err := c.identify(ctx, c.once)
		if err == nil {
			c.log.WithField("firmware", id.FirmwareVersion).Info("the device is back")
			return id, nil
		}
		if fatalWhileWaiting(err) {
			return device.Identity{}, wrap("wait", err)
		}
		last = err
		select {
		case <-tick.C:
		case <-ctx.Done():
			return device.Identity{}, c.waitErr(parent, last)
		}
	}
}

// fatalWhileWaiting reports errors that end a wait at once: refused
// credentials (repeating them would lock the account), a certificate
// mismatch, a cancelled context.
func fatalWhileWaiting(err error) bool {
	var ae *AuthError
	return errors.As(err, &ae) || errors.Is(err, ErrCertMismatch) || errors.Is(err, context.Canceled) || errors.Is(err, ErrBasicNotAllowed)
}

func (c *Client) waitErr(parent context.Context, last error) error {
	if parent.Err() != nil {
		return wrap("wait", parent.Err())
	}
	msg := fmt.Sprintf("the device did not answer within %s after the reboot (reboot_timeout): check it on site", c.cfg.RebootTimeout)
	if last != nil {
		msg += "; last error: " + last.Error()
	}
	return &device.Error{Op: "wait", Code: device.CodeRebootTimeout, Transient: true, Err: fmt.Errorf("%w: %s", device.ErrUnreachable, msg)}
}
