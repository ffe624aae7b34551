package isapi

import (
	"errors"
	"strings"
	"testing"
)

// FuzzReplyError feeds ResponseStatus documents (and anything else) with
// any HTTP status to the code that turns a device's refusal into an error.
// Whatever the body, a non-2xx reply is an error that names the request and
// is never taken for success.
func FuzzReplyError(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{403, `<?xml version="1.0" encoding="UTF-8"?><ResponseStatus version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema"><requestURL>/ISAPI/System/updateFirmware</requestURL><statusCode>4</statusCode><statusString>Invalid Operation</statusString><subStatusCode>badDevType</subStatusCode></ResponseStatus>`},
		{503, `<ResponseStatus xmlns="urn:psialliance-org"><statusCode>2</statusCode><subStatusCode>deviceBusy</subStatusCode></ResponseStatus>`},
		{400, `<ResponseStatus><statusCode>1</statusCode><subStatusCode>ok</subStatusCode></ResponseStatus>`},
		{500, `<responsestatus><statusCode>7</statusCode></responsestatus>`},
		{401, `{"ResponseStatus":{"statusCode":4}}`},
		{404, `<html>not found</html>`},
		{502, ``},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 300 || status > 599 {
			return // replyError is only called for non-2xx replies
		}
		err := replyError("/ISAPI/System/updateFirmware", status, body)
		if err == nil {
			t.Fatalf("HTTP %d with body %q gave no error", status, body)
		}
		msg := err.Error()
		if msg == "" {
			t.Fatal("empty error message")
		}
		var se *StatusError
		if errors.As(err, &se) {
			if se.RequestURL == "" {
				t.Fatalf("status error without a request URL: %+v", se)
			}
			if se.Code() == "" || se.Code() == "ok" {
				t.Fatalf("a refusal with code %q: %+v", se.Code(), se)
			}
			_ = se.Transient()
			_ = se.RebootRequired()
			return
		}
		if !strings.Contains(msg, "/ISAPI/System/updateFirmware") {
			t.Fatalf("error %q does not name the request", msg)
		}
	})
}

// FuzzStatusError parses ResponseStatus documents as a 200 reply's body:
// a document that says OK is not an error, and every other ResponseStatus is
// one, with a stable code.
func FuzzStatusError(f *testing.F) {
	f.Add([]byte(`<ResponseStatus><requestURL>/ISAPI/System/reboot</requestURL><statusCode>1</statusCode><statusString>OK</statusString></ResponseStatus>`))
	f.Add([]byte(`<ResponseStatus><statusCode>3</statusCode><subStatusCode>badFlash</subStatusCode></ResponseStatus>`))
	f.Add([]byte(`<ResponseStatus><statusCode>1</statusCode><subStatusCode>upgrading</subStatusCode></ResponseStatus>`))
	f.Add([]byte(`<ResponseStatus><statusCode>+1</statusCode></ResponseStatus>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := parseDocument(b)
		if err != nil {
			if !errors.Is(err, ErrBadReply) {
				t.Fatalf("parse error %v does not wrap ErrBadReply", err)
			}
			return
		}
		se := doc.statusError(200)
		isStatus := strings.EqualFold(doc.Root, "ResponseStatus")
		if !isStatus && se != nil {
			t.Fatalf("<%s> taken for a ResponseStatus", doc.Root)
		}
		if se == nil {
			return
		}
		if se.Code() == "" || se.Code() == "ok" || se.Error() == "" {
			t.Fatalf("refusal without a code: %+v", se)
		}
	})
}
