package source

// LongLinePolicy says what a source does with a line longer than its
// maximum line size. Either way the line is counted with the Reporter's
// Dropped, as "line_truncated" or "line_too_long". The sources of this
// module (Reader, filetail, dockerlogs) share it.
type LongLinePolicy int

const (
	// TruncateLongLines keeps the first maximum-line-size bytes of the line
	// and discards the rest (the default).
	TruncateLongLines LongLinePolicy = iota
	// DropLongLines discards the whole line.
	DropLongLines
)

// String returns "truncate" or "drop".
func (p LongLinePolicy) String() string {
	switch p {
	case TruncateLongLines:
		return "truncate"
	case DropLongLines:
		return "drop"
	}
	return "unknown"
}

// Valid reports whether p is one of the policies above.
func (p LongLinePolicy) Valid() bool { return p == TruncateLongLines || p == DropLongLines }
