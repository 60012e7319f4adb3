package httpclient

import (
	"bufio"
	"net/http"
	"net/http/httptrace"
	"slices"
)

// writeGET writes req, a GET without a body, in the bytes Request.Write
// gives it, without Request.Write's fmt calls, whose frames grew the stack
// of the fresh goroutine each scrape runs on (time.AfterFunc's) at every
// scrape. It writes only requests it can vouch for byte for byte — an ASCII
// host of plain characters, a URI without control bytes, header names that
// are tokens and values with nothing to trim or replace, no Close, no
// trailer, no client trace — and leaves every other request to
// Request.Write.
func writeGET(w *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	uri := req.URL.RequestURI()
	if req.Close || req.ContentLength != 0 || len(req.TransferEncoding) > 0 || req.Trailer != nil ||
		!plainHost(host) || hasCTL(uri) || httptrace.ContextClientTrace(req.Context()) != nil {
		return req.Write(w)
	}
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if !plainValue(ua) {
		return req.Write(w)
	}
	// The other headers, by name, as Header.Write sorts them.
	var buf [16]string
	keys := buf[:0]
	for k, vv := range req.Header {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !isToken(k) {
			return req.Write(w)
		}
		for _, v := range vv {
			if !plainValue(v) {
				return req.Write(w)
			}
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	w.WriteString("GET ")
	w.WriteString(uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(ua)
		w.WriteString("\r\n")
	}
	for _, k := range keys {
		for _, v := range req.Header[k] {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	_, err := w.WriteString("\r\n")
	return err
}

// plainHost reports whether host is made of letters, digits and . - : [ ]
// alone: such a host needs neither Punycode nor a zone removed, and is a
// valid Host header.
func plainHost(host string) bool {
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds a control byte.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// plainValue reports whether Request.Write writes the header value v as it
// is: no CR or LF in it (they become spaces) and no space or tab at either
// end (trimmed).
func plainValue(v string) bool {
	if v == "" {
		return true
	}
	if first, last := v[0], v[len(v)-1]; first == ' ' || first == '\t' || last == ' ' || last == '\t' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] == '\r' || v[i] == '\n' {
			return false
		}
	}
	return true
}

// isToken reports whether s is an HTTP token (RFC 9110, 5.6.2), which a
// header name must be.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			switch c {
			case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			default:
				return false
			}
		}
	}
	return true
}
