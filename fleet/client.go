package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Client is the agent's side of the protocol: it signs check-ins and
// reports with the device key and posts them to the fleet server.
//
// Retries belong to HTTPClient alone (one owner per retry): a request is
// tried at most 1+RetryMax times with its backoff; a 4xx other than 408
// and 429 is not retried and comes back as a *StatusError whose Permanent
// is true.
type Client struct {
	// BaseURL is the server, like https://fleet.example:8471 (the agent's
	// fleet.url).
	BaseURL string
	// Key signs every message.
	Key *DeviceKey
	// HTTPClient sends the requests; NewClient sets 2 retries with a 1 s
	// to 10 s backoff and a 30 s timeout per try: worst case about
	// 3*30 s + 1 s + 2 s.
	HTTPClient *retryablehttp.Client
}

// NewClient returns a Client with the default HTTP client.
func NewClient(baseURL string, key *DeviceKey) *Client {
	hc := retryablehttp.NewClient()
	hc.RetryMax = 2
	hc.RetryWaitMin = time.Second
	hc.RetryWaitMax = 10 * time.Second
	hc.HTTPClient.Timeout = 30 * time.Second
	hc.Logger = nil
	hc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Key: key, HTTPClient: hc}
}

// CheckIn signs c and sends it; it returns the server's reply. On any error
// the agent carries on as if the server said nothing (no hold known is not
// a permission: the signed manifest decides what may start).
//
// Every try is signed afresh, with a new sequence number: a retry of the
// same signed check-in after a try the server stored (its answer lost, or
// a 503 for the holds alone) would be refused as a replay, and the agent
// would go on without the holds.
func (c *Client) CheckIn(ctx context.Context, ci CheckIn) (CheckInReply, error) {
	var reply CheckInReply
	sign := retryablehttp.ReaderFunc(func() (io.Reader, error) {
		env, _, err := c.Key.SignCheckIn(ci)
		if err != nil {
			return nil, err
		}
		// No Len: each try's body has its own length (its sequence
		// number), so none is announced from the first.
		return io.MultiReader(bytes.NewReader(env.Marshal())), nil
	})
	body, err := c.post(ctx, CheckInPath, sign)
	if err != nil {
		return reply, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&reply); err != nil {
		return reply, fmt.Errorf("the fleet server's check-in reply is not valid JSON: %w", err)
	}
	return reply, nil
}

// Report signs r now and sends it. An agent that queues reports signs them
// when it queues them (DeviceKey.SignReport) and sends the envelope with
// SendReport.
func (c *Client) Report(ctx context.Context, r Report) error {
	env, _, err := c.Key.SignReport(r)
	if err != nil {
		return err
	}
	return c.SendReport(ctx, env)
}

// SendReport posts a signed report envelope.
func (c *Client) SendReport(ctx context.Context, env *Envelope) error {
	_, err := c.post(ctx, ReportPath, env.Marshal())
	return err
}

// post sends body (bytes, or a retryablehttp.ReaderFunc called for every
// try) to path.
func (c *Client) post(ctx context.Context, path string, payload any) ([]byte, error) {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, payload)
	if err != nil {
		return nil, fmt.Errorf("fleet: build the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fleet: post to %s: %w", c.BaseURL+path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxReply+1))
	if err != nil {
		return nil, fmt.Errorf("fleet: read the answer of %s: %w", c.BaseURL+path, err)
	}
	if len(body) > MaxReply {
		return nil, errors.New("fleet: the server's answer is larger than the limit")
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		reason := http.StatusText(resp.StatusCode)
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			reason = e.Error
		}
		return nil, &StatusError{Status: resp.StatusCode, Reason: reason}
	}
	return body, nil
}
