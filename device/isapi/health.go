package isapi

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/fwagent/fwagent/device"
)

// ISAPI paths of the health checks.
const (
	PathStorage        = "/ISAPI/ContentMgmt/Storage"
	PathChannelsStatus = "/ISAPI/ContentMgmt/InputProxy/channels/status"
)

// Caps on what a health reply may list; a recorder has a few dozen disks
// and channels at most.
const (
	maxDisks    = 256
	maxChannels = 1024
)

var _ device.HealthReader = (*Client)(nil)

// Health reads the recorder's disks (ContentMgmt/Storage), its camera
// channels (InputProxy/channels/status) and upgradeStatus. A part the
// recorder does not support (404, or ResponseStatus notSupport, as older
// firmware and recorders without IP channels answer) is named in
// Unsupported; when neither disks nor channels are supported, the error
// wraps device.ErrNotSupported (the reading is still returned). Requests go
// through the client's retrying API client.
func (c *Client) Health(ctx context.Context) (device.Health, error) {
	var h device.Health
	st, err := c.status(ctx, c.api)
	if err != nil {
		return h, wrap("health", err)
	}
	h.Upgrade = st
	disks, err := c.Disks(ctx)
	switch {
	case errors.Is(err, device.ErrNotSupported):
		h.Unsupported = append(h.Unsupported, device.PartDisks)
	case err != nil:
		return h, err
	default:
		h.Disks = disks
	}
	chans, err := c.Channels(ctx)
	switch {
	case errors.Is(err, device.ErrNotSupported):
		h.Unsupported = append(h.Unsupported, device.PartChannels)
	case err != nil:
		return h, err
	default:
		h.Channels = chans
	}
	if len(h.Unsupported) == 2 {
		return h, &device.Error{Op: "health", Code: device.CodeNotSupport, Err: fmt.Errorf("%w: neither %s nor %s answers", device.ErrNotSupported, PathStorage, PathChannelsStatus)}
	}
	return h, nil
}

// Disks reads the recorder's disks from ContentMgmt/Storage. A recorder
// without that endpoint gives an error wrapping device.ErrNotSupported.
func (c *Client) Disks(ctx context.Context) ([]device.Disk, error) {
	body, err := c.getOptional(ctx, PathStorage)
	if err != nil {
		return nil, wrap("health", err)
	}
	d, err := parseStorage(body)
	return d, wrap("health", err)
}

// Channels reads the camera channels' status. A recorder without IP
// channels gives an error wrapping device.ErrNotSupported.
func (c *Client) Channels(ctx context.Context) ([]device.Channel, error) {
	body, err := c.getOptional(ctx, PathChannelsStatus)
	if err != nil {
		return nil, wrap("health", err)
	}
	ch, err := parseChannels(body)
	return ch, wrap("health", err)
}

// getOptional is get for an endpoint older firmware lacks: 404, 501 and a
// ResponseStatus notSupport become errors wrapping device.ErrNotSupported.
func (c *Client) getOptional(ctx context.Context, path string) ([]byte, error) {
	status, body, err := c.do(ctx, c.api, http.MethodGet, path)
	if err != nil {
		return nil, err
	}
	if status >= 200 && status <= 299 {
		if doc, err := parseDocument(body); err == nil {
			if se := doc.statusError(status); se != nil {
				return nil, notSupported(path, status, se)
			}
		}
		return body, nil
	}
	return nil, notSupported(path, status, replyError(path, status, body))
}

// notSupported turns err (the reply to path) into an error wrapping
// device.ErrNotSupported when it says the recorder lacks the endpoint, and
// returns it unchanged otherwise. status is the reply's HTTP status.
func notSupported(path string, status int, err error) error {
	var se *StatusError
	unsupported := status == http.StatusNotFound || status == http.StatusNotImplemented
	if errors.As(err, &se) {
		unsupported = unsupported || se.SubStatusCode == "notSupport"
	}
	if !unsupported {
		return err
	}
	return &device.Error{Op: "health", Code: device.CodeNotSupport, Err: fmt.Errorf("%w: %s (%w)", device.ErrNotSupported, path, err)}
}

// listItem is one repeated element of a list document: the text of its
// direct children, by local name.
type listItem struct {
	parent string // local name of the element holding the item
	name   string // local name of the item
	fields map[string]string
}

// parseList reads a list document whose root is one of roots: every element
// named in items (at any depth below the root) becomes a listItem with the
// text of its direct children, by local name, whatever the namespaces.
// Grandchildren (an address inside sourceInputPortDescriptor) are skipped.
// A ResponseStatus document comes back as its *StatusError.
func parseList(b []byte, what string, roots, items []string, max int) ([]listItem, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	var (
		path  []string
		out   []listItem
		cur   *listItem
		depth int // depth of cur's element in path
		text  strings.Builder
		root  string
	)
	isOne := func(name string, set []string) bool {
		for _, s := range set {
			if strings.EqualFold(name, s) {
				return true
			}
		}
		return false
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not valid XML: %w", ErrBadReply, what, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = t.Name.Local
				if strings.EqualFold(root, "ResponseStatus") {
					doc, err := parseDocument(b)
					if err != nil {
						return nil, err
					}
					if se := doc.statusError(200); se != nil {
						return nil, se
					}
					return nil, fmt.Errorf("%w: %s answered an OK ResponseStatus, not a list", ErrBadReply, what)
				}
				if !isOne(root, roots) {
					return nil, fmt.Errorf("%w: %s answered <%s>, not <%s>", ErrBadReply, what, truncate(root), roots[0])
				}
			} else if len(path) == 0 {
				return nil, fmt.Errorf("%w: %s has more than one root element", ErrBadReply, what)
			}
			path = append(path, t.Name.Local)
			if len(path) > 16 {
				return nil, fmt.Errorf("%w: %s nests elements too deep", ErrBadReply, what)
			}
			if cur == nil && len(path) > 1 && isOne(t.Name.Local, items) {
				if len(out) >= max {
					return nil, fmt.Errorf("%w: %s lists more than %d items", ErrBadReply, what, max)
				}
				cur = &listItem{parent: path[len(path)-2], name: t.Name.Local, fields: map[string]string{}}
				depth = len(path)
			}
			text.Reset()
		case xml.CharData:
			if cur != nil && len(path) == depth+1 {
				text.Write(t)
			}
		case xml.EndElement:
			switch {
			case cur != nil && len(path) == depth+1:
				name := path[len(path)-1]
				if _, seen := cur.fields[name]; !seen {
					cur.fields[name] = strings.TrimSpace(text.String())
				}
			case cur != nil && len(path) == depth:
				out = append(out, *cur)
				cur = nil
			}
			text.Reset()
			path = path[:len(path)-1]
		}
	}
	if root == "" {
		return nil, fmt.Errorf("%w: %s is empty", ErrBadReply, what)
	}
	return out, nil
}

// parseStorage reads a <storage> document (or a bare <hddList>): every
// <hdd> and <nas>, by local name in any namespace. Statuses are kept as
// reported; device.ClassifyDisk says what they mean.
func parseStorage(b []byte) ([]device.Disk, error) {
	items, err := parseList(b, "ContentMgmt/Storage", []string{"storage", "hddList", "nasList"}, []string{"hdd", "nas"}, maxDisks)
	if err != nil {
		return nil, err
	}
	disks := make([]device.Disk, 0, len(items))
	for i, it := range items {
		f := it.fields
		d := device.Disk{
			ID:       truncate(f["id"]),
			Name:     truncate(firstOf(f, "hddName", "nasName", "name")),
			Kind:     strings.ToLower(it.name),
			Status:   truncate(f["status"]),
			Property: truncate(f["property"]),
		}
		if d.ID == "" {
			return nil, fmt.Errorf("%w: ContentMgmt/Storage: %s number %d has no id", ErrBadReply, it.name, i+1)
		}
		if d.Status == "" {
			// No status is no proof of health.
			d.Status = "unknown"
		}
		d.CapacityMB = parseMB(f["capacity"])
		d.FreeMB = parseMB(f["freeSpace"])
		disks = append(disks, d)
	}
	return disks, nil
}

// parseChannels reads an <InputProxyChannelStatusList>. A channel's online
// is true only when it says so; the camera's address is not kept.
func parseChannels(b []byte) ([]device.Channel, error) {
	items, err := parseList(b, "InputProxy/channels/status", []string{"InputProxyChannelStatusList"}, []string{"InputProxyChannelStatus"}, maxChannels)
	if err != nil {
		return nil, err
	}
	chans := make([]device.Channel, 0, len(items))
	for i, it := range items {
		ch := device.Channel{ID: truncate(it.fields["id"]), Detect: truncate(it.fields["chanDetectResult"])}
		if ch.ID == "" {
			return nil, fmt.Errorf("%w: InputProxy/channels/status: channel number %d has no id", ErrBadReply, i+1)
		}
		switch strings.ToLower(it.fields["online"]) {
		case "true", "1":
			ch.Online = true
		}
		chans = append(chans, ch)
	}
	return chans, nil
}

// parseMB reads a size in MB; anything else is 0 (sizes are informative).
func parseMB(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

func firstOf(f map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := f[k]; v != "" {
			return v
		}
	}
	return ""
}
