package isapi

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fwagent/fwagent/device"
)

// maxReply caps every reply the client reads into memory.
const maxReply = 1 << 20

// readCapped reads at most maxReply bytes of r.
func readCapped(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxReply+1))
	if err != nil {
		return b, err
	}
	if len(b) > maxReply {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxReply)
	}
	return b, nil
}

// document is an XML document flattened to its root's local name and the
// text of its elements, keyed by local name (nested elements as
// "parent.child"), whatever the namespaces.
type document struct {
	Root   string
	Fields map[string]string
	Order  []string
}

// parseDocument flattens an XML document. The first value of a repeated
// element wins.
func parseDocument(b []byte) (*document, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	doc := &document{Fields: map[string]string{}}
	var path []string
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: not valid XML: %w", ErrBadReply, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if doc.Root == "" {
				doc.Root = t.Name.Local
			} else if len(path) == 0 {
				return nil, fmt.Errorf("%w: more than one root element", ErrBadReply)
			}
			path = append(path, t.Name.Local)
			text.Reset()
			if len(path) > 16 {
				return nil, fmt.Errorf("%w: elements nested too deep", ErrBadReply)
			}
		case xml.CharData:
			if len(path) > 1 {
				text.Write(t)
			}
		case xml.EndElement:
			if len(path) > 1 {
				key := strings.Join(path[1:], ".")
				if _, seen := doc.Fields[key]; !seen {
					doc.Fields[key] = strings.TrimSpace(text.String())
					doc.Order = append(doc.Order, key)
				}
			}
			text.Reset()
			path = path[:len(path)-1]
		}
	}
	if doc.Root == "" {
		return nil, fmt.Errorf("%w: empty document", ErrBadReply)
	}
	return doc, nil
}

// statusError returns the ResponseStatus in doc as an error, or nil when doc
// is not a ResponseStatus or says OK.
func (doc *document) statusError(httpStatus int) *StatusError {
	if !strings.EqualFold(doc.Root, "ResponseStatus") {
		return nil
	}
	se := &StatusError{
		HTTPStatus:    httpStatus,
		StatusString:  doc.Fields["statusString"],
		SubStatusCode: doc.Fields["subStatusCode"],
		RequestURL:    doc.Fields["requestURL"],
	}
	se.StatusCode, _ = strconv.Atoi(doc.Fields["statusCode"])
	if se.StatusCode == 1 && (se.SubStatusCode == "" || se.SubStatusCode == "ok") {
		return nil
	}
	return se
}

// parseIdentity reads a DeviceInfo document.
func parseIdentity(b []byte) (device.Identity, error) {
	doc, err := parseDocument(b)
	if err != nil {
		return device.Identity{}, err
	}
	if se := doc.statusError(200); se != nil {
		return device.Identity{}, se
	}
	if doc.Root != "DeviceInfo" {
		return device.Identity{}, fmt.Errorf("%w: deviceInfo answered <%s>, not <DeviceInfo>: is the URL an ISAPI device?", ErrBadReply, truncate(doc.Root))
	}
	id := device.Identity{
		Model:           doc.Fields["model"],
		Serial:          doc.Fields["serialNumber"],
		FirmwareVersion: doc.Fields["firmwareVersion"],
		FirmwareBuild:   doc.Fields["firmwareReleasedDate"],
		DeviceType:      doc.Fields["deviceType"],
		Raw:             make(map[string]string, len(doc.Fields)),
	}
	for k, v := range doc.Fields {
		id.Raw[k] = v
	}
	var missing []string
	if id.Model == "" {
		missing = append(missing, "model")
	}
	if id.FirmwareVersion == "" {
		missing = append(missing, "firmwareVersion")
	}
	if len(missing) > 0 {
		return device.Identity{}, fmt.Errorf("%w: DeviceInfo lacks %s: the device cannot be identified safely", ErrBadReply, strings.Join(missing, " and "))
	}
	return id, nil
}

// parseUpgradeStatus reads an upgradeStatus document.
func parseUpgradeStatus(b []byte) (device.InstallStatus, error) {
	doc, err := parseDocument(b)
	if err != nil {
		return device.InstallStatus{}, err
	}
	if se := doc.statusError(200); se != nil {
		return device.InstallStatus{}, se
	}
	if !strings.EqualFold(doc.Root, "upgradeStatus") {
		return device.InstallStatus{}, fmt.Errorf("%w: upgradeStatus answered <%s>, not <upgradeStatus>", ErrBadReply, truncate(doc.Root))
	}
	var st device.InstallStatus
	switch strings.ToLower(doc.Fields["upgrading"]) {
	case "true", "1":
		st.Upgrading = true
	case "false", "0":
	default:
		return st, fmt.Errorf("%w: upgradeStatus has upgrading=%q, want true or false", ErrBadReply, truncate(doc.Fields["upgrading"]))
	}
	if p := doc.Fields["percent"]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 100 {
			return st, fmt.Errorf("%w: upgradeStatus has percent=%q, want 0-100", ErrBadReply, truncate(p))
		}
		st.Percent = n
	}
	return st, nil
}

// parseLockInfo reads what a 401 body says about the account lock: XML or
// JSON, any nesting, by field name. Unknown values stay -1.
func parseLockInfo(b []byte) (locked bool, retriesLeft, lockSeconds int) {
	retriesLeft, lockSeconds = -1, -1
	fields := map[string]string{}
	if doc, err := parseDocument(b); err == nil {
		for k, v := range doc.Fields {
			fields[k[strings.LastIndex(k, ".")+1:]] = v
		}
	} else {
		var m map[string]any
		if json.Unmarshal(b, &m) == nil {
			flattenJSON(m, fields)
		}
	}
	num := func(names ...string) int {
		for _, n := range names {
			if v, ok := fields[n]; ok {
				if i, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && i >= 0 {
					return i
				}
			}
		}
		return -1
	}
	ls := strings.ToLower(fields["lockStatus"])
	locked = ls == "lock" || ls == "locked" || ls == "true"
	retriesLeft = num("retryTimes", "retryLoginTime")
	lockSeconds = num("resLockTime", "unlockTime")
	return locked, retriesLeft, lockSeconds
}

func flattenJSON(m map[string]any, out map[string]string) {
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			flattenJSON(x, out)
		case string:
			out[k] = x
		case float64:
			out[k] = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(x)
		}
	}
}

// replyError turns a non-2xx reply into an error: its ResponseStatus when it
// has one, otherwise the HTTP status.
func replyError(path string, status int, body []byte) error {
	if doc, err := parseDocument(body); err == nil {
		if se := doc.statusError(status); se != nil {
			if se.RequestURL == "" {
				se.RequestURL = path
			}
			return se
		}
	}
	err := fmt.Errorf("%s answered HTTP %d", path, status)
	switch {
	case status == 404:
		return fmt.Errorf("%w: %w: check the url; is it an ISAPI device?", ErrBadReply, err)
	case status == 503 || status == 429 || status == 502 || status == 504:
		return &StatusError{HTTPStatus: status, StatusCode: 2, StatusString: "Device Busy", SubStatusCode: device.CodeDeviceBusy, RequestURL: path}
	case status >= 500:
		return fmt.Errorf("%w: %w", device.ErrUnreachable, err)
	}
	return fmt.Errorf("%w: %w", ErrBadReply, err)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
