package syslogmsg

// The labels of a parsed message, as Promtail names them.
const (
	LabelSeverity   = "__syslog_message_severity"
	LabelFacility   = "__syslog_message_facility"
	LabelHostname   = "__syslog_message_hostname"
	LabelAppName    = "__syslog_message_app_name"
	LabelProcID     = "__syslog_message_proc_id"
	LabelMsgID      = "__syslog_message_msg_id"
	LabelSDPrefix   = "__syslog_message_sd_"
	LabelParseError = "__syslog_parse_error"
)

// SeverityNames are the label values of the severities 0 to 7.
var SeverityNames = [8]string{"emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug"}

// FacilityNames are the label values of the facilities 0 to 23: the
// keywords of syslog(3) where there is one, and the RFC 5424 description
// where there is not, as Promtail labels them.
var FacilityNames = [24]string{
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "clock daemon", "authpriv", "ftp", "NTP subsystem", "log audit", "log alert", "cron",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
}

// Label is one label of an entry.
type Label struct {
	Name, Value string
}

// Builder makes the line and labels of an entry from a parsed message,
// the same way for the syslog source and the syslog stage. Its zero value
// is ready; it reuses its memory from one message to the next and is not
// safe for concurrent use.
type Builder struct {
	// KeepRaw makes the line the whole message as received, rather than
	// its MSG part.
	KeepRaw bool
	// StructuredData adds a __syslog_message_sd_<id>_<name> label for each
	// RFC 5424 SD-PARAM.
	StructuredData bool
	// Strings, when not nil, makes the one string of each message (see
	// Build) from the bytes Build assembled, which are the Builder's and
	// reused; a source copies them into memory that the lines of a batch
	// share. Nil means a string of their own.
	Strings func(b []byte) string

	buf    []byte
	spans  []span
	labels []Label
}

// span is a label whose name and/or value lie in Builder.buf.
type span struct {
	name   string // when not in buf
	n0, n1 int    // name in buf when name == ""
	v0, v1 int    // value in buf; v0 < 0: v1 indexes SeverityNames (-1) or FacilityNames (-2)
}

// Build returns the line of the message raw (which Parse parsed into m
// with error perr) and its labels, in the order severity, facility,
// hostname, app name, proc ID, msg ID, structured data, or only
// __syslog_parse_error when perr is not nil (the line is then raw).
// Absent fields and empty SD values have no label. All the strings share
// one allocation (or are made by Strings); the labels are valid until the
// next Build.
func (b *Builder) Build(m *Message, raw []byte, perr error) (line string, labels []Label) {
	buf := b.buf[:0]
	spans := b.spans[:0]
	add := func(name string, v []byte) {
		if len(v) == 0 {
			return
		}
		v0 := len(buf)
		buf = append(buf, v...)
		spans = append(spans, span{name: name, v0: v0, v1: len(buf)})
	}
	l := raw
	if perr == nil && !b.KeepRaw {
		l = m.Msg
	}
	buf = append(buf, l...)
	lineEnd := len(buf)
	if perr == nil {
		if sev := m.Severity(); sev >= 0 {
			spans = append(spans, span{name: LabelSeverity, v0: -1, v1: sev})
			spans = append(spans, span{name: LabelFacility, v0: -2, v1: m.Facility()})
		}
		add(LabelHostname, m.Hostname)
		add(LabelAppName, m.AppName)
		add(LabelProcID, m.ProcID)
		add(LabelMsgID, m.MsgID)
		if b.StructuredData && len(m.StructuredData) > 0 {
			EachSDParam(m.StructuredData, func(id, name, value []byte) {
				if name == nil {
					return
				}
				n0 := len(buf)
				buf = append(buf, LabelSDPrefix...)
				buf = AppendLabelName(buf, id)
				buf = append(buf, '_')
				buf = AppendLabelName(buf, name)
				n1 := len(buf)
				buf = UnescapeSDValue(buf, value)
				if len(buf) > n1 {
					spans = append(spans, span{n0: n0, n1: n1, v0: n1, v1: len(buf)})
				} else {
					buf = buf[:n0]
				}
			})
		}
	}
	var str string // the one string of this message
	if b.Strings != nil {
		str = b.Strings(buf)
	} else {
		str = string(buf)
	}
	b.buf, b.spans = buf, spans
	lbls := b.labels[:0]
	for _, sp := range spans {
		var l Label
		switch {
		case sp.v0 == -1:
			l = Label{Name: sp.name, Value: SeverityNames[sp.v1]}
		case sp.v0 == -2:
			l = Label{Name: sp.name, Value: FacilityNames[sp.v1]}
		case sp.name == "":
			l = Label{Name: str[sp.n0:sp.n1], Value: str[sp.v0:sp.v1]}
		default:
			l = Label{Name: sp.name, Value: str[sp.v0:sp.v1]}
		}
		lbls = append(lbls, l)
	}
	if perr != nil {
		lbls = append(lbls, Label{Name: LabelParseError, Value: perr.Error()})
	}
	b.labels = lbls
	return str[:lineEnd], lbls
}

// AppendLabelName appends b with every byte that may not appear in a
// label name replaced by '_' (so "origin@32473" becomes "origin_32473").
func AppendLabelName(dst, b []byte) []byte {
	for _, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}
