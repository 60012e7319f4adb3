package stage

import (
	"strings"
	"time"
	"unsafe"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/syslog/syslogmsg"
)

// Syslog parses a syslog message that arrived through another source, such
// as a line of /var/log/syslog that rsyslog wrote, with the parser of
// source/syslog (package syslogmsg): RFC 5424, and RFC 3164 with its
// vendor variants (a file written by rsyslog's traditional format has no
// PRI: "Dec  4 10:11:12 host app[42]: text" is read as user.notice).
//
// The entry gets the labels the syslog source gives, but for the
// connection's: __syslog_message_severity, _facility, _hostname,
// _app_name, _proc_id, _msg_id, and __syslog_message_sd_<id>_<name> with
// LabelStructuredData; each value is also extracted under the label's name
// without "__syslog_message_" ("hostname", "app_name", "severity", …),
// for Labels and Template stages. The line becomes the message's MSG part
// unless KeepRaw is set.
//
// A line that cannot be parsed passes unchanged with a
// __syslog_parse_error label and is counted as "syslog_malformed", or is
// dropped with that reason when DropMalformed is set.
type Syslog struct {
	// Source is the extracted value to parse; empty means the line.
	Source string
	// KeepRaw keeps the line as it was rather than replacing it with the
	// message's MSG part.
	KeepRaw bool
	// LabelStructuredData adds labels for RFC 5424 structured data.
	LabelStructuredData bool
	// UseIncomingTimestamp sets the entry's timestamp from the message's,
	// when it has one.
	UseIncomingTimestamp bool
	// Location of RFC 3164 timestamps, which carry no zone (default UTC).
	Location *time.Location
	// DropMalformed drops lines that are not syslog messages.
	DropMalformed bool

	p   syslogmsg.Parser
	m   syslogmsg.Message
	b   syslogmsg.Builder
	ext map[string]string // label name -> extracted name
}

// Init sets up the parser.
func (s *Syslog) Init() error {
	s.p.Location = s.Location
	s.b.KeepRaw, s.b.StructuredData = s.KeepRaw, s.LabelStructuredData
	s.ext = map[string]string{}
	return nil
}

// extractedName returns the extracted name of a label, remembered so that
// SD labels cost their name once.
func (s *Syslog) extractedName(label string) string {
	if n, ok := s.ext[label]; ok {
		return n
	}
	n := strings.TrimPrefix(label, "__syslog_message_")
	if len(s.ext) < 4096 {
		s.ext[strings.Clone(label)] = n
	}
	return n
}

// Process parses the line.
func (s *Syslog) Process(c *Context, e *ferry.Entry) bool {
	src, ok := source(c, e, s.Source)
	if !ok {
		return true
	}
	// The parser only reads: view the string's bytes without a copy.
	raw := unsafe.Slice(unsafe.StringData(src), len(src))
	perr := s.p.Parse(raw, &s.m)
	if perr != nil && s.DropMalformed {
		return fail(c, "syslog_malformed", true)
	}
	line, lbls := s.b.Build(&s.m, raw, perr)
	for _, l := range lbls {
		c.SetLabel(l.Name, l.Value)
		if perr == nil {
			c.Extracted[s.extractedName(l.Name)] = l.Value
		}
	}
	if perr != nil {
		return fail(c, "syslog_malformed", false)
	}
	if !s.KeepRaw {
		e.Line = line
	}
	if s.UseIncomingTimestamp && !s.m.Timestamp.IsZero() {
		e.Timestamp = s.m.Timestamp
	}
	return true
}
