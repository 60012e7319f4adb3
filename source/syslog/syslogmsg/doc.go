// Package syslogmsg parses syslog messages, RFC 5424 and RFC 3164 with its
// vendor variants, and makes the line and labels of their log entries. It
// is shared by source/syslog, which receives messages over the network,
// and process/stage's Syslog stage, which parses syslog lines that came
// through another source (a file rsyslog writes), so that both give a
// message the same labels. It uses the standard library only.
//
// Parser.Parse does not allocate: a Message's fields are views into the
// parsed bytes. It works on offsets into the message, finds the fields of
// an RFC 5424 header eight bytes at a time (SWAR), looks character classes
// up in a table, and caches what consecutive messages share: the minute
// of an RFC 3339 timestamp, the day's number, and the year guessed for
// RFC 3164 timestamps. Builder.Build then makes an entry's line and label
// values as one string (which Builder.Strings may cut from memory that a
// batch of them shares).
//
// BenchmarkSyslogParse measures it against a bufio line split of the same
// bytes, and FuzzParseMatchesReference holds it to the simpler parser it
// replaced, kept in reference_test.go.
package syslogmsg
