package fetch

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/sirupsen/logrus"

	"github.com/fwagent/fwagent/internal/httplog"
	"github.com/fwagent/fwagent/internal/retry"
)

// ClientOptions configures NewHTTPClient. The retry values are taken as
// they are (the agent passes the config's): 0 retries means one request,
// 0 waits mean no pause.
type ClientOptions struct {
	// RetryMax is how often the client itself retries a request after a
	// transient failure (0, or negative: never). Give 0 to a client that
	// serves a Downloader: the Downloader owns the retries of image GETs.
	RetryMax     int
	RetryWaitMin time.Duration // pause before the first retry; doubles (retry.Policy)
	RetryWaitMax time.Duration // longest pause, also the cap on Retry-After
	// Timeout bounds one whole request, body included; 0 means no bound.
	// Manifest clients should set it (DefaultTimeout); image downloads must
	// leave it 0 and rely on the Downloader's stall timeout instead, or a
	// large image would be cut off.
	Timeout time.Duration
	// HeaderTimeout bounds the wait for response headers (default 30s).
	HeaderTimeout time.Duration
	Logger        logrus.FieldLogger // nil logs nothing
}

// Transport bounds that are not configuration keys.
const (
	DefaultTimeout       = 30 * time.Second // a whole manifest request
	DefaultHeaderTimeout = 30 * time.Second // response headers, when HeaderTimeout is 0
)

// NewHTTPClient builds the retrying HTTP client every request of the agent
// but image bodies goes through: bounded retries with exponential backoff,
// proxy from the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), timeouts,
// and a retry policy that never retries a 4xx other than 408 and 429.
// Once retries are exhausted the last response is returned as is (not an
// error), so callers can report the real status.
func NewHTTPClient(opts ClientOptions) *retryablehttp.Client {
	if opts.RetryMax < 0 {
		opts.RetryMax = 0
	}
	if opts.RetryWaitMin < 0 {
		opts.RetryWaitMin = 0
	}
	if opts.RetryWaitMax < opts.RetryWaitMin {
		opts.RetryWaitMax = opts.RetryWaitMin
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   15 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: opts.HeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// Image bodies are already compressed; a transparent gzip would
		// also break byte ranges.
		DisableCompression: true,
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{Transport: transport, Timeout: opts.Timeout}
	c.RetryMax = opts.RetryMax
	c.RetryWaitMin = opts.RetryWaitMin
	c.RetryWaitMax = opts.RetryWaitMax
	c.CheckRetry = retryPolicy
	c.Backoff = backoff
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	c.Logger = nil
	if opts.Logger != nil {
		c.Logger = httplog.Leveled(opts.Logger)
	}
	return c
}

// retryPolicy retries network errors, 408, 429 and 5xx except 501; never
// another 4xx, never after the context ended.
func retryPolicy(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil {
		// retryablehttp's own policy knows which transport errors are
		// permanent (bad scheme, bad certificate, redirect loops).
		retry, _ := retryablehttp.DefaultRetryPolicy(ctx, nil, err)
		return retry, nil
	}
	return statusTransient(resp.StatusCode), nil
}

// backoff is the one backoff (retry.Backoff): exponential, and a server's
// Retry-After is capped at the configured maximum so a hostile header
// cannot park the agent for days.
var backoff retryablehttp.Backoff = retry.Backoff
