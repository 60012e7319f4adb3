package syslog

import "github.com/ferrydev/ferry/source/syslog/syslogmsg"

// The parser lives in package syslogmsg, shared with stage.Syslog, which
// parses syslog lines that arrived through other sources; these names keep
// it reachable from here.
type (
	// Parser is syslogmsg.Parser.
	Parser = syslogmsg.Parser
	// Message is syslogmsg.Message.
	Message = syslogmsg.Message
	// Format is syslogmsg.Format.
	Format = syslogmsg.Format
)

// The formats of syslogmsg.
const (
	Unparsed = syslogmsg.Unparsed
	RFC5424  = syslogmsg.RFC5424
	RFC3164  = syslogmsg.RFC3164
)

// The errors of Parser.Parse.
var (
	ErrEmpty        = syslogmsg.ErrEmpty
	ErrPriority     = syslogmsg.ErrPriority
	ErrNoPriority   = syslogmsg.ErrNoPriority
	ErrHeader       = syslogmsg.ErrHeader
	ErrTimestamp    = syslogmsg.ErrTimestamp
	ErrFieldTooLong = syslogmsg.ErrFieldTooLong
	ErrSD           = syslogmsg.ErrSD
)

// EachSDParam is syslogmsg.EachSDParam.
func EachSDParam(sd []byte, fn func(id, name, value []byte)) { syslogmsg.EachSDParam(sd, fn) }

// UnescapeSDValue is syslogmsg.UnescapeSDValue.
func UnescapeSDValue(dst, v []byte) []byte { return syslogmsg.UnescapeSDValue(dst, v) }
