package redact_test

import (
	"fmt"
	"testing"

	"github.com/ferrydev/ferry/internal/redact"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		// Nothing to hide.
		{"", ""},
		{"connection refused", "connection refused"},
		{`Post "http://loki:3100/loki/api/v1/push": EOF`, `Post "http://loki:3100/loki/api/v1/push": EOF`},
		{"http://host/?mail=a@b.example", "http://host/?mail=a@b.example"},
		{"basic authentication failed", "basic authentication failed"},
		{"level=info msg=started author=bob", "level=info msg=started author=bob"},
		{"time: 12:00:01 key_count=3", "time: 12:00:01 key_count=3"},

		// User information of URLs.
		{"https://user:pass@loki.example/push", "https://user:<redacted>@loki.example/push"},
		{`Post "https://bob:s3cr3t@host:3100/x?y=1": 401`, `Post "https://bob:<redacted>@host:3100/x?y=1": 401`},
		{"git+ssh://ghp_abcdef@github.com/x", "git+ssh://<redacted>@github.com/x"},
		{"a http://u:p@a/ b https://v:q@b/", "a http://u:<redacted>@a/ b https://v:<redacted>@b/"},
		{"redis://:pw@cache:6379", "redis://<redacted>@cache:6379"},

		// Query and logfmt parameters.
		{"http://h/ready?token=abc123&x=1", "http://h/ready?token=<redacted>&x=1"},
		{`Get "http://loki:3100/ready?token=abc": deadline`, `Get "http://loki:3100/ready?token=<redacted>": deadline`},
		{"/push?access_token=a.b.c&api_key=k1&X-Amz-Signature=ff00&sig=zz", "/push?access_token=<redacted>&api_key=<redacted>&X-Amz-Signature=<redacted>&sig=<redacted>"},
		{"user=bob password=hunter2 ok", "user=bob password=<redacted> ok"},
		{`password="hunter 2" next=1`, `password="<redacted>" next=1`},
		{`passwd='x y'`, `passwd='<redacted>'`},
		{"db_pass=x client_secret=y", "db_pass=<redacted> client_secret=<redacted>"},
		{"password: hunter2", "password: <redacted>"},
		{"key=AIzaSyD", "key=<redacted>"},

		// JSON and label sets.
		{`{"user":"bob","password":"hunter2"}`, `{"user":"bob","password":"<redacted>"}`},
		{`{__meta_docker_container_label_db_password="hunter2", job="x"}`, `{__meta_docker_container_label_db_password="<redacted>", job="x"}`},
		{`{"apiKey": "k"}`, `{"apiKey": "<redacted>"}`},

		// Headers and auth schemes.
		{"Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.sig", "Authorization: Bearer <redacted>"},
		{"Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic <redacted>"},
		{"map[Authorization:[Bearer abc.def] Accept:[*/*]]", "map[Authorization:[Bearer <redacted>] Accept:[*/*]]"},
		{"X-Api-Key: k-123", "X-Api-Key: <redacted>"},
		{"Cookie: session=abc; theme=dark", "Cookie: <redacted>; theme=dark"},
		{"sent bearer abc.DEF-123 to peer", "sent bearer <redacted> to peer"},
		{"using Basic YWRtaW46YWRtaW4= for it", "using Basic <redacted> for it"},
		{"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "jwt <redacted> here"},
	} {
		if got := redact.String(c.in); got != c.want {
			t.Errorf("Redact(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestRedactIsIdempotent(t *testing.T) {
	for _, s := range []string{
		"https://user:pass@h/?token=x Authorization: Bearer y password=z",
		`{"password":"a","token":"b"}`,
	} {
		once := redact.String(s)
		if twice := redact.String(once); twice != once {
			t.Errorf("Redact(Redact(%q)) = %q, want %q", s, twice, once)
		}
	}
}

func TestSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "PASSWORD": true, "db_pass": true, "access_token": true, "X-Amz-Signature": true,
		"apiKey": true, "api-key": true, "client_secret": true, "__meta_docker_container_label_vault_token": true,
		"Authorization": true, "auth": true, "x_auth": true, "sig": true, "key": true,
		"job": false, "instance": false, "__address__": false, "author": false, "keyword": false, "signal": false,
		"passenger": false, "container": false, "path": false,
	} {
		if got := redact.SecretName(name); got != want {
			t.Errorf("SecretName(%q) = %v", name, got)
		}
	}
}

func FuzzRedact(f *testing.F) {
	for _, s := range []string{"https://u:p@h/?token=x", `password="a\"b"`, "Authorization: Bearer x", "a=b:c", `"'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := redact.String(s)
		if redact.String(out) != out {
			t.Errorf("not idempotent: %q -> %q -> %q", s, out, redact.String(out))
		}
	})
}

func ExampleString() {
	fmt.Println(redact.String(`Post "https://ferry:hunter2@loki.example/loki/api/v1/push?tenant=a&token=t0k3n": 401`))
	fmt.Println(redact.String(`Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.c2ln`))
	fmt.Println(redact.String(`{__address__="db:5432", __meta_docker_container_label_db_password="hunter2"}`))
	// Output:
	// Post "https://ferry:<redacted>@loki.example/loki/api/v1/push?tenant=a&token=<redacted>": 401
	// Authorization: Bearer <redacted>
	// {__address__="db:5432", __meta_docker_container_label_db_password="<redacted>"}
}
