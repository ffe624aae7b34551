package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string // redacted mode
		personal string // include-personal mode; empty: same as want
	}{
		{"an IPv4 address is personal", "connect 192.168.1.64:80 failed", "connect [REDACTED:ip]:80 failed", "connect 192.168.1.64:80 failed"},
		{"an IPv4 address with leading zeros is personal", "host 010.001.002.003", "host [REDACTED:ip]", "host 010.001.002.003"},
		{"an IPv6 address is personal", "peer [2001:db8::1]:443 and fe80::1%eth0.", "peer [[REDACTED:ip]]:443 and [REDACTED:ip]%eth0.", "peer [2001:db8::1]:443 and fe80::1%eth0."},
		{"an IPv4-mapped IPv6 address is one address", "from ::ffff:10.0.0.1 now", "from [REDACTED:ip] now", "from ::ffff:10.0.0.1 now"},
		{"an email address is personal", "contact ops.team+nvr@example.co.uk today", "contact [REDACTED:email] today", "contact ops.team+nvr@example.co.uk today"},
		{"a URL password is a secret and its user personal", "GET http://admin:s3cr3t@192.0.2.7/ISAPI", "GET http://[REDACTED:user]:[REDACTED:secret]@[REDACTED:ip]/ISAPI", "GET http://admin:[REDACTED:secret]@192.0.2.7/ISAPI"},
		{"a URL user without password is personal", "https://alice@mirror.example.com/x", "https://[REDACTED:user]@mirror.example.com/x", "https://alice@mirror.example.com/x"},
		{"a Basic Authorization value is a secret", "Authorization: Basic YWRtaW46cGFzcw==\n", "Authorization: Basic [REDACTED:secret]\n", ""},
		{"a Bearer Authorization value is a secret", `"Authorization":"Bearer eyJhbGciOi.x-y_z"`, `"Authorization":"Bearer [REDACTED:secret]"`, ""},
		{"a Go header map Authorization is a secret", "map[Authorization:[Basic abc123] Accept:[*/*]]", "map[Authorization:[Basic [REDACTED:secret]] Accept:[*/*]]", ""},
		{"a Digest Authorization keeps only the user name", `Authorization: Digest username="admin", realm="DS-2CD", nonce="abc", uri="/ISAPI/System/deviceInfo", response="0123abcd"`, `Authorization: Digest username="[REDACTED:user]", [REDACTED:secret]`, `Authorization: Digest username="admin", [REDACTED:secret]`},
		{"a Digest header inside a JSON string is handled", `{"msg":"req Authorization: Digest username=\"admin\", response=\"ff\""}`, `{"msg":"req Authorization: Digest username=\"[REDACTED:user]\", [REDACTED:secret]"}`, `{"msg":"req Authorization: Digest username=\"admin\", [REDACTED:secret]"}`},
		{"an Authorization value without scheme is a secret", "authorization=abcdef123", "authorization=[REDACTED:secret]", ""},
		{"a password in key=value form is a secret", "login failed password=hunter2 retry=1", "login failed password=[REDACTED:secret] retry=1", ""},
		{"a quoted password with spaces is a secret", `password="correct horse" next=1`, `password="[REDACTED:secret]" next=1`, ""},
		{"a JSON password is a secret", `{"device_password":"p@ss\"word","x":1}`, `{"device_password":"[REDACTED:secret]","x":1}`, ""},
		{"a YAML password runs to the end of the line", "isapi:\n  password: correct horse battery # set by installer\n  host: nvr\n", "isapi:\n  password: [REDACTED:secret] # set by installer\n  host: nvr\n", ""},
		{"an empty YAML value does not swallow the next line", "token:\nmodel: x\n", "token:\nmodel: x\n", ""},
		{"tokens, api keys and secrets are secrets", "token=abc api_key: k1 client_secret=s pwd=p passwd=q", "token=[REDACTED:secret] api_key: [REDACTED:secret] client_secret=[REDACTED:secret] pwd=[REDACTED:secret] passwd=[REDACTED:secret]", ""},
		{"a token file path is not a secret", "status:\n  token_file: /etc/fwagent/status.token\n", "status:\n  token_file: /etc/fwagent/status.token\n", ""},
		{"an XML password is a secret and an XML user personal", "<userName>admin</userName><password>12345</password>", "<userName>[REDACTED:user]</userName><password>[REDACTED:secret]</password>", "<userName>admin</userName><password>[REDACTED:secret]</password>"},
		{"an HTML-escaped XML password is a secret and its user personal", `{"body":"\u003cUser\u003e\u003cuserName\u003ebob\u003c/userName\u003e\u003cpassword\u003ehunter2\u003c/password\u003e\u003c/User\u003e"}`, `{"body":"\u003cUser\u003e\u003cuserName\u003e[REDACTED:user]\u003c/userName\u003e\u003cpassword\u003e[REDACTED:secret]\u003c/password\u003e\u003c/User\u003e"}`, `{"body":"\u003cUser\u003e\u003cuserName\u003ebob\u003c/userName\u003e\u003cpassword\u003e[REDACTED:secret]\u003c/password\u003e\u003c/User\u003e"}`},
		{"an upper-case escape is matched too", `\u003CPassword\u003Ehunter2\u003C/Password\u003E`, `\u003CPassword\u003E[REDACTED:secret]\u003C/Password\u003E`, ""},
		{"user name keys are personal", `user=alice "username":"bob" isapi.user: carol`, `user=[REDACTED:user] "username":"[REDACTED:user]" isapi.user: [REDACTED:user]`, `user=alice "username":"bob" isapi.user: carol`},
		{"a user agent is not a user name", "User-Agent: fwagent/1.0", "User-Agent: fwagent/1.0", ""},
		{"a private key block is a secret", "key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----\nafter", "key:\n[REDACTED:private_key]\nafter", ""},
		{"an unterminated private key is cut with its base64 lines", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\nnext line", "[REDACTED:private_key]\nnext line", ""},
		{"version strings stay", "firmware V4.1.25 build 200316, V4.62.210, 5.5.0.1.2", "firmware V4.1.25 build 200316, V4.62.210, 5.5.0.1.2", ""},
		{"model IDs, serials and digests stay", "iDS-9632NXI-I8/16S DS-9632NXI-I81620200316CCRRE12345678WCVU sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "iDS-9632NXI-I8/16S DS-9632NXI-I81620200316CCRRE12345678WCVU sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ""},
		{"a URL password with a slash is a secret", "GET http://admin:ab/cd@192.168.1.64/ISAPI", "GET http://[REDACTED:user]:[REDACTED:secret]@[REDACTED:ip]/ISAPI", "GET http://admin:[REDACTED:secret]@192.168.1.64/ISAPI"},
		{"a URL password with an @ is a secret", `url="http://admin:p@ss@host.example/x"`, `url="http://[REDACTED:user]:[REDACTED:secret]@host.example/x"`, `url="http://admin:[REDACTED:secret]@host.example/x"`},
		{"a URL userinfo stops at a space", "http://a:b@h1.example/ and mail c@d.example", "http://[REDACTED:user]:[REDACTED:secret]@h1.example/ and mail [REDACTED:email]", "http://a:[REDACTED:secret]@h1.example/ and mail c@d.example"},
		{"pass, passphrase and secret keys are secrets", "pass=p1 ssh_passphrase: p2 secret_key=p3 aws_secret_access_key=p4 bypass=true", "pass=[REDACTED:secret] ssh_passphrase: [REDACTED:secret] secret_key=[REDACTED:secret] aws_secret_access_key=[REDACTED:secret] bypass=true", ""},
		{"session ids are secrets", `session=abc123 "sessionid":"def456" JSESSIONID=ghi789 session_timeout=30`, `session=[REDACTED:secret] "sessionid":"[REDACTED:secret]" JSESSIONID=[REDACTED:secret] session_timeout=30`, ""},
		{"a Cookie header value is a secret", "Cookie: WebSession_1a2b3c=0f1e2d3c4b; lang=en", "Cookie: [REDACTED:secret]", ""},
		{"a Set-Cookie header in a JSON log is a secret", `{"msg":"login ok","set-cookie":"WebSession_9f=deadbeef; path=/; HttpOnly"}`, `{"msg":"login ok","set-cookie":"[REDACTED:secret]"}`, ""},
		{"a Go header map Cookie is a secret", "map[Cookie:[WebSession_1=abc; x=y] Accept:[*/*]]", "map[Cookie:[[REDACTED:secret]] Accept:[*/*]]", ""},
		{"a command-line password or token is a secret", "run fwctl --password hunter2 --token 'abc def' --verbose", "run fwctl --password [REDACTED:secret] --token '[REDACTED:secret]' --verbose", ""},
		{"a percent-encoded email is personal", "GET /report?to=john.doe%40example.com&x=1", "GET /report?to=[REDACTED:email]&x=1", "GET /report?to=john.doe%40example.com&x=1"},
		{"times stay", "at 2026-03-01T02:15:04.123+01:00 and 15:04:05", "at 2026-03-01T02:15:04.123+01:00 and 15:04:05", ""},
		{"a URL user before the configuration's password marker is personal", "url: http://site-user:<redacted>@mirror.example.net/m.json", "url: http://[REDACTED:user]:[REDACTED:secret]@mirror.example.net/m.json", "url: http://site-user:[REDACTED:secret]@mirror.example.net/m.json"},
		{"a MAC address with colons is personal", "mac 44:19:B6:0A:1b:2c seen", "mac [REDACTED:mac] seen", "mac 44:19:B6:0A:1b:2c seen"},
		{"a MAC address with hyphens is personal", "hw=44-19-b6-0a-1b-2c.", "hw=[REDACTED:mac].", "hw=44-19-b6-0a-1b-2c."},
		{"a MAC address in dotted groups of four is personal", "port aabb.ccdd.eeff up", "port [REDACTED:mac] up", "port aabb.ccdd.eeff up"},
		{"a macAddress key is personal in any notation", `{"macAddress":"4419B60A1B2C","model":"x"}`, `{"macAddress":"[REDACTED:mac]","model":"x"}`, `{"macAddress":"4419B60A1B2C","model":"x"}`},
		{"an XML macAddress is personal", "<macAddress>4419b60a1b2c</macAddress>", "<macAddress>[REDACTED:mac]</macAddress>", "<macAddress>4419b60a1b2c</macAddress>"},
		{"a deviceID is personal", `{"deviceID":"88e3c1f0-1b2c-4d5e-8f90-a1b2c3d4e5f6"} <deviceID>abc-1</deviceID> device_id=xyz`, `{"deviceID":"[REDACTED:device_id]"} <deviceID>[REDACTED:device_id]</deviceID> device_id=[REDACTED:device_id]`, `{"deviceID":"88e3c1f0-1b2c-4d5e-8f90-a1b2c3d4e5f6"} <deviceID>abc-1</deviceID> device_id=xyz`},
		{"the manifest's refusal of URL credentials stays readable", "image.urls[0] carries credentials (a user name or password), which never belong in a signed manifest: remove them from the URL", "image.urls[0] carries credentials (a user name or password), which never belong in a signed manifest: remove them from the URL", ""},
		{"a reason code ending in Credentials is no key", "badCredentials: the device refused; credentials=abc isapi_credential: def", "badCredentials: the device refused; credentials=[REDACTED:secret] isapi_credential: [REDACTED:secret]", ""},
		{"a deviceName is personal", `<deviceName>Smith residence</deviceName> "deviceName": "Shop 4"`, `<deviceName>[REDACTED:name]</deviceName> "deviceName": "[REDACTED:name]"`, `<deviceName>Smith residence</deviceName> "deviceName": "Shop 4"`},
		{"longer colon runs, times and HMACs are not MAC addresses", "id aa:bb:cc:dd:ee:ff:00 at 15:04:05 hmac=abc", "id aa:bb:cc:dd:ee:ff:00 at 15:04:05 hmac=abc", ""},
		{"a Basic credential in text is a secret", "use Basic YWRtaW46aHVudGVyMg== for the mirror", "use Basic [REDACTED:secret] for the mirror", ""},
		{"a Bearer token in text is a secret", "send bearer eyJhbGciOiJIUzI1NiJ9.e30.sig1 now", "send bearer [REDACTED:secret] now", ""},
		{"plain words after basic and bearer stay", "basic support for bearer tokens", "basic support for bearer tokens", ""},
		{"a TargetToken Authorization value is a secret", "Authorization: TargetToken 0a1b2c3d4e", "Authorization: TargetToken [REDACTED:secret]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Redact(tt.in, false); got != tt.want {
				t.Errorf("Redact(personal=false)\n got: %s\nwant: %s", got, tt.want)
			}
			wantP := tt.personal
			if wantP == "" {
				wantP = tt.want
			}
			if got := Redact(tt.in, true); got != wantP {
				t.Errorf("Redact(personal=true)\n got: %s\nwant: %s", got, wantP)
			}
			for _, p := range []bool{false, true} {
				once := Redact(tt.in, p)
				if twice := Redact(once, p); twice != once {
					t.Errorf("not idempotent (personal=%v)\nonce:  %s\ntwice: %s", p, once, twice)
				}
			}
		})
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"http://admin:pw@10.0.0.1/ISAPI",
		`Authorization: Digest username="u", response="r"`,
		`{"password":"x","user":"bob","ip":"fe80::1"}`,
		"-----BEGIN RSA PRIVATE KEY-----\nAAAAAAAAAAAAAAAAAAAA\n",
		"token: abc # c\nuser: [REDACTED:user]",
		"mail a.b@c.de 1.2.3.4.5 V4.1.25",
		"<password>x</password><user>y</user>",
		"map[Authorization:[Bearer t]]",
		"http://a:b/c@d@h/ Cookie: x=1; y=2 --token t",
		"http://u:<redacted>@h/ 44:19:b6:0a:1b:2c aabb.ccdd.eeff",
		`{"deviceID":"d-1","macAddress":"4419b60a1b2c"}`,
		"Basic YWRtaW46cA== bearer abcdef123456",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []bool{false, true} {
			once := Redact(s, p)
			if twice := Redact(once, p); twice != once {
				t.Fatalf("not idempotent (personal=%v)\nin:    %q\nonce:  %q\ntwice: %q", p, s, once, twice)
			}
		}
		if strings.Contains(s, "-----BEGIN PRIVATE KEY-----") && strings.Contains(Redact(s, true), "-----BEGIN PRIVATE KEY-----") {
			t.Fatalf("private key kept: %q", s)
		}
	})
}

func TestURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"user and password go", "https://user:p%40ss@mirror.example.net:8443/fw/x.dav?a=1", "https://mirror.example.net:8443/fw/x.dav?a=1"},
		{"a user alone goes", "http://alice@192.0.2.7/m.json", "http://192.0.2.7/m.json"},
		{"a URL without userinfo is unchanged", "https://mirror.example.net/x?to=a@b.example", "https://mirror.example.net/x?to=a@b.example"},
		{"an unparsable URL loses its userinfo too", "http://admin:pw@[bad/x", "http://[bad/x"},
		{"userinfo cut by a space is not a URL's: left to Redact", "http://admin:p w@h/x", "http://admin:p w@h/x"},
		{"a password with a slash", "http://admin:ab/cd@192.0.2.7/ISAPI", "http://192.0.2.7/ISAPI"},
		{"text that is not a URL is unchanged", "not a url", "not a url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := URL(tt.in); got != tt.want {
				t.Errorf("URL(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRecordStripsUserinfoAndSecretsFromText(t *testing.T) {
	in := `download image http://joe:pw1@m.example/x: Get "http://joe:***@m.example/x": EOF; token=abc123`
	got := Record(in)
	for _, bad := range []string{"joe", "pw1", "***", "abc123"} {
		if strings.Contains(got, bad) {
			t.Errorf("Record kept %q: %s", bad, got)
		}
	}
	if !strings.Contains(got, "http://m.example/x") {
		t.Errorf("Record lost the URL: %s", got)
	}
	if Record(got) != got {
		t.Errorf("Record is not idempotent: %s", got)
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"http://u:p@h/x", "https://a@b@c/d", "ftp://x:y/z@h", "http://h/?q=a@b", "u:p@h", "http://[::1]:80/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := URL(s)
		if u, err := url.Parse(out); err == nil && u.User != nil && u.Opaque == "" && strings.Contains(s, "://") {
			if pw, ok := u.User.Password(); ok && pw != "" {
				t.Fatalf("URL(%q) = %q keeps a password", s, out)
			}
		}
		if once := StripUserinfo(s); StripUserinfo(once) != once {
			t.Fatalf("StripUserinfo not idempotent on %q", s)
		}
	})
}
