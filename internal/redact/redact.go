// Package redact removes secrets from text shown to people: passwords in
// URLs, tokens in query strings, logfmt and JSON, authorization headers,
// secret-named labels. The debug page passes everything it shows through it.
package redact

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
)

// Redacted is what Redact puts in place of a secret.
const Redacted = "<redacted>"

var (
	// scheme://userinfo@ — userinfo stops at the characters that end an
	// authority, so that "http://host/?mail=a@b" keeps its query.
	reURLUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#@\s"'<>]+)@`)
	// Header lines and header dumps: "Authorization: Bearer x",
	// "map[Authorization:[Basic x]]", "X-Api-Key=x".
	reAuthHeader = regexp.MustCompile(`(?i)\b((?:proxy-)?authorization|x-api-key|api-key|x-auth-token|cookie|set-cookie)(["']?\s*[:=]\s*\[?["']?)((?:bearer|basic|token|digest|negotiate)\s+)?([^\s"'\],;]+)`)
	// Credentials after an auth scheme wherever they appear.
	reBearer = regexp.MustCompile(`(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*`)
	// Basic credentials are base64 of "user:pass"; requiring a digit, "+",
	// "/" or "=" keeps prose ("basic authentication") intact.
	reBasic = regexp.MustCompile(`(?i)\b(basic)\s+[A-Za-z0-9+/]*[0-9+/=][A-Za-z0-9+/]*=*`)
	// JSON Web Tokens: header.payload.signature, each base64url.
	reJWT = regexp.MustCompile(`\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*`)
	// The name and separator of name=value, name="value", "name":"value",
	// name: value. Only the name and separator are matched, so that a
	// harmless name ("http:") does not swallow a secret one after it; the
	// value's extent is found by valueEnd.
	reKeyValue = regexp.MustCompile(`([A-Za-z0-9_.\-]+)("?[ \t]*[=:][ \t]*)`)
)

// Redact returns s with credentials replaced by Redacted: the user
// information of URLs (scheme://user:pass@host keeps the user), bearer and
// basic credentials, authorization, cookie and API-key headers, JSON Web
// Tokens, and the values of parameters and labels whose names say they hold
// a secret (password=, token=, access_token=, api_key=, secret=, sig=, …, in
// query strings, logfmt, JSON and label sets alike).
//
// The debug handler applies it to everything it shows that came from
// outside the program: errors, targets, labels, positions and tailed lines.
// It is meant for display and errs on the side of hiding too much. Strings
// without anything to redact are returned unchanged, without allocating
// beyond the scan.
func String(s string) string {
	if s == "" {
		return s
	}
	if strings.Contains(s, "://") {
		s = reURLUserinfo.ReplaceAllStringFunc(s, redactUserinfo)
	}
	if strings.IndexByte(s, '=') >= 0 || strings.IndexByte(s, ':') >= 0 {
		s = reAuthHeader.ReplaceAllString(s, "${1}${2}${3}"+Redacted)
		s = redactKeyValues(s)
	}
	s = reBearer.ReplaceAllString(s, "${1} "+Redacted)
	s = reBasic.ReplaceAllString(s, "${1} "+Redacted)
	if strings.Contains(s, "eyJ") {
		s = reJWT.ReplaceAllString(s, Redacted)
	}
	return s
}

func redactUserinfo(m string) string {
	sm := reURLUserinfo.FindStringSubmatch(m)
	scheme, info := sm[1], sm[2]
	if user, _, ok := strings.Cut(info, ":"); ok && user != "" {
		return scheme + user + ":" + Redacted + "@"
	}
	return scheme + Redacted + "@"
}

// redactKeyValues replaces the values of secret-named parameters in s.
func redactKeyValues(s string) string {
	var b strings.Builder
	last := 0
	for _, m := range reKeyValue.FindAllStringSubmatchIndex(s, -1) {
		if m[0] < last {
			continue // inside a value already replaced
		}
		name := s[m[2]:m[3]]
		if !SecretName(name) {
			continue
		}
		vs := m[1]
		ve := valueEnd(s, vs)
		val := s[vs:ve]
		if val == "" || strings.Contains(val, Redacted) {
			continue
		}
		switch strings.ToLower(val) {
		case "bearer", "basic", "token", "digest", "negotiate":
			// A header's scheme: its credentials follow, and reAuthHeader
			// or reBearer takes care of them.
			continue
		}
		b.WriteString(s[last:vs])
		switch q := val[0]; {
		case (q == '"' || q == '\'') && len(val) >= 2 && val[len(val)-1] == q:
			b.WriteByte(q)
			b.WriteString(Redacted)
			b.WriteByte(q)
		default:
			b.WriteString(Redacted)
		}
		last = ve
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// valueEnd returns where the value that starts at i ends: after its closing
// quote if it is quoted, else before the first character that ends a value
// in a query string, a logfmt line, a header or a label set.
func valueEnd(s string, i int) int {
	if i < len(s) && (s[i] == '"' || s[i] == '\'') {
		q := s[i]
		for j := i + 1; j < len(s); j++ {
			switch s[j] {
			case '\\':
				j++
			case q:
				return j + 1
			}
		}
		return len(s)
	}
	for j := i; j < len(s); j++ {
		switch s[j] {
		case ' ', '\t', '\n', '\r', '&', ';', ',', '"', '\'', '<', '>', '(', ')', '[', ']', '{', '}':
			return j
		}
	}
	return len(s)
}

// secretWords are the parts of parameter and label names that mark their
// values as secrets; secretNames are whole names that do.
var (
	secretWords = []string{"password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey",
		"privatekey", "credential", "signature", "sessionid", "cookie", "authorization"}
	secretNames = map[string]bool{"pass": true, "pwd": true, "auth": true, "key": true, "sig": true, "jwt": true}
)

// SecretName reports whether a parameter, header or label of this name
// holds a secret by its name: password, access_token,
// __meta_docker_container_label_db_password, X-Amz-Signature, apiKey and the
// like. Case, "-", "_" and "." are ignored.
func SecretName(name string) bool {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		case c == '_' || c == '-' || c == '.':
		default:
			b.WriteByte(c)
		}
	}
	n := b.String()
	if secretNames[n] {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	// A name that ends in a short secret's whole name: db_pass, x_auth.
	lower := strings.ToLower(name)
	for _, w := range []string{"_pass", "_pwd", "_auth", "-auth", "_jwt"} {
		if strings.HasSuffix(lower, w) {
			return true
		}
	}
	return false
}

// redactLabels returns ls as a map for JSON, with every value redacted.
func Labels(ls labels.Labels) map[string]string {
	m := make(map[string]string, ls.Len())
	ls.Range(func(l labels.Label) { m[l.Name] = labelValue(l.Name, l.Value) })
	return m
}

// redactLabelValue redacts the value of a label, hiding it whole when the
// label's name says it is a secret.
func labelValue(name, value string) string {
	if value != "" && SecretName(name) {
		return Redacted
	}
	return String(value)
}

// redactLabelString renders ls as labels.Labels.String does, redacted.
func LabelString(ls labels.Labels) string {
	var b strings.Builder
	b.WriteByte('{')
	i := 0
	ls.Range(func(l labels.Label) {
		if i > 0 {
			b.WriteString(", ")
		}
		i++
		b.WriteString(l.Name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labelValue(l.Name, l.Value)))
	})
	b.WriteByte('}')
	return b.String()
}
