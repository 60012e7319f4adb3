package lokipush

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// decoder turns push bodies into entries. streamLabels maps a stream's
// parsed labels to the labels its entries get (extra labels, tenant); it is
// called once per stream.
type decoder struct {
	streamLabels func(labels.Labels) labels.Labels
	sb           labels.ScratchBuilder
}

func (d *decoder) finish(ls labels.Labels) labels.Labels {
	if d.streamLabels == nil {
		return ls
	}
	return d.streamLabels(ls)
}

// decodeProto decodes an uncompressed PushRequest and appends its entries to
// out. Strings of the result share one copy of raw, made once.
func (d *decoder) decodeProto(raw []byte, out []ferry.Entry) ([]ferry.Entry, error) {
	s := string(raw) // one copy: every line and name is a substring of it
	b := raw
	// First pass: check the structure, find each stream's labels (which may
	// follow its entries on the wire) and count entries, so that out grows
	// once.
	type span struct {
		start, end int
		labels     string
	}
	var spans []span
	total := 0
	for pos := 0; pos < len(b); {
		num, typ, n := protowire.ConsumeTag(b[pos:])
		if n < 0 {
			return out, fmt.Errorf("protobuf: PushRequest: %w", protowire.ParseError(n))
		}
		pos += n
		if num != 1 || typ != protowire.BytesType {
			m := protowire.ConsumeFieldValue(num, typ, b[pos:])
			if m < 0 {
				return out, fmt.Errorf("protobuf: PushRequest field %d: %w", num, protowire.ParseError(m))
			}
			pos += m
			continue
		}
		v, m := protowire.ConsumeBytes(b[pos:])
		if m < 0 {
			return out, fmt.Errorf("protobuf: stream %d: %w", len(spans), protowire.ParseError(m))
		}
		sp := span{start: pos + m - len(v), end: pos + m}
		lstr, count, err := scanStream(s, b, sp.start, sp.end)
		if err != nil {
			return out, fmt.Errorf("protobuf: stream %d: %w", len(spans), err)
		}
		sp.labels = lstr
		spans = append(spans, sp)
		total += count
		pos += m
	}
	out = slices.Grow(out, total)
	for i, sp := range spans {
		var err error
		out, err = d.decodeStream(s, b, sp.start, sp.end, sp.labels, out)
		if err != nil {
			return out, fmt.Errorf("protobuf: stream %d: %w", i, err)
		}
	}
	return out, nil
}

// scanStream checks the fields of the StreamAdapter in b[pos:end], and
// returns its labels and number of entries.
func scanStream(s string, b []byte, pos, end int) (string, int, error) {
	lstr, found, count := "", false, 0
	for p := pos; p < end; {
		num, typ, n := protowire.ConsumeTag(b[p:end])
		if n < 0 {
			return "", 0, protowire.ParseError(n)
		}
		p += n
		m := protowire.ConsumeFieldValue(num, typ, b[p:end])
		if m < 0 {
			return "", 0, fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
		}
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return "", 0, fmt.Errorf("labels: wrong wire type %d", typ)
			}
			v, k := protowire.ConsumeBytes(b[p:end])
			lstr, found = s[p+k-len(v):p+k], true
		case 2:
			if typ != protowire.BytesType {
				return "", 0, fmt.Errorf("entry %d: wrong wire type %d", count, typ)
			}
			count++
		}
		p += m
	}
	if !found {
		return "", 0, errors.New("no labels: at least one label pair is required per stream")
	}
	return lstr, count, nil
}

// decodeStream decodes the entries of the StreamAdapter in b[pos:end],
// checked by scanStream; s is b as a string.
func (d *decoder) decodeStream(s string, b []byte, pos, end int, lstr string, out []ferry.Entry) ([]ferry.Entry, error) {
	ls, err := parseLabels(lstr)
	if err != nil {
		return out, err
	}
	ls = d.finish(ls)
	entry := 0
	for p := pos; p < end; {
		num, typ, n := protowire.ConsumeTag(b[p:end])
		p += n
		m := protowire.ConsumeFieldValue(num, typ, b[p:end])
		if num == 2 {
			v, k := protowire.ConsumeBytes(b[p:end])
			e, err := d.decodeEntry(s, b, p+k-len(v), p+k)
			if err != nil {
				return out, fmt.Errorf("labels %s: entry %d: %w", lstr, entry, err)
			}
			e.Labels = ls
			out = append(out, e)
			entry++
		}
		p += m
	}
	return out, nil
}

func (d *decoder) decodeEntry(s string, b []byte, pos, end int) (ferry.Entry, error) {
	var e ferry.Entry
	var sec int64
	var nsec int64
	d.sb.Reset()
	md, hasTS := false, false
	for pos < end {
		num, typ, n := protowire.ConsumeTag(b[pos:end])
		if n < 0 {
			return e, protowire.ParseError(n)
		}
		pos += n
		m := protowire.ConsumeFieldValue(num, typ, b[pos:end])
		if m < 0 {
			return e, fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
		}
		switch num {
		case 1, 2, 3:
			if typ != protowire.BytesType {
				return e, fmt.Errorf("field %d: wrong wire type %d", num, typ)
			}
			v, k := protowire.ConsumeBytes(b[pos:end])
			vs, ve := pos+k-len(v), pos+k
			switch num {
			case 1:
				var err error
				if sec, nsec, err = decodeTimestamp(b[vs:ve]); err != nil {
					return e, fmt.Errorf("timestamp: %w", err)
				}
				hasTS = true
			case 2:
				e.Line = s[vs:ve]
			case 3:
				name, value, err := decodePair(s, b, vs, ve)
				if err != nil {
					return e, fmt.Errorf("structured metadata: %w", err)
				}
				d.sb.Add(name, value)
				md = true
			}
		}
		pos += m
	}
	// Without a timestamp the entry's time is not known (the zero time), as
	// ferry.Entry documents; Loki itself would reject such an entry as old.
	if hasTS {
		e.Timestamp = time.Unix(sec, nsec)
	}
	if md {
		d.sb.Sort()
		e.Metadata = d.sb.Labels()
	}
	return e, nil
}

func decodeTimestamp(b []byte) (sec, nsec int64, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, protowire.ParseError(n)
		}
		b = b[n:]
		if (num == 1 || num == 2) && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, 0, protowire.ParseError(m)
			}
			if num == 1 {
				sec = int64(v)
			} else {
				nsec = int64(int32(v))
			}
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return 0, 0, protowire.ParseError(m)
		}
		b = b[m:]
	}
	if nsec < 0 || nsec > 999_999_999 {
		return 0, 0, fmt.Errorf("nanos %d out of range [0, 999999999]", nsec)
	}
	return sec, nsec, nil
}

func decodePair(s string, b []byte, pos, end int) (name, value string, err error) {
	for pos < end {
		num, typ, n := protowire.ConsumeTag(b[pos:end])
		if n < 0 {
			return "", "", protowire.ParseError(n)
		}
		pos += n
		m := protowire.ConsumeFieldValue(num, typ, b[pos:end])
		if m < 0 {
			return "", "", protowire.ParseError(m)
		}
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(b[pos:end])
			str := s[pos+k-len(v) : pos+k]
			if num == 1 {
				name = str
			} else {
				value = str
			}
		}
		pos += m
	}
	if name == "" {
		return "", "", errors.New("empty name")
	}
	return name, value, nil
}

// parseLabels parses a stream selector with only = matchers, as Loki
// accepts in StreamAdapter.labels: {name="value", name2="value2"}.
func parseLabels(s string) (labels.Labels, error) {
	in := s
	fail := func(msg string) (labels.Labels, error) {
		return labels.EmptyLabels(), fmt.Errorf("invalid labels %.200q: %s", in, msg)
	}
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return fail("must be enclosed in {}")
	}
	s = s[1 : len(s)-1]
	var sb labels.ScratchBuilder
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			break
		}
		i := 0
		for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > 0 && s[i] >= '0' && s[i] <= '9') {
			i++
		}
		if i == 0 {
			return fail(fmt.Sprintf("expected a label name at %.20q", s))
		}
		name := s[:i]
		s = strings.TrimLeft(s[i:], " \t\n\r")
		if s == "" || s[0] != '=' {
			return fail(fmt.Sprintf("expected = after label %q", name))
		}
		s = strings.TrimLeft(s[1:], " \t\n\r")
		if s == "" || (s[0] != '"' && s[0] != '`') {
			return fail(fmt.Sprintf("expected a quoted value for label %q", name))
		}
		end := 1
		if s[0] == '`' {
			for end < len(s) && s[end] != '`' {
				end++
			}
		} else {
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
		}
		if end >= len(s) {
			return fail(fmt.Sprintf("unterminated value of label %q", name))
		}
		value, err := strconv.Unquote(s[:end+1])
		if err != nil {
			return fail(fmt.Sprintf("value of label %q: %v", name, err))
		}
		if !utf8.ValidString(value) {
			return fail(fmt.Sprintf("value of label %q is not valid UTF-8", name))
		}
		sb.Add(name, value)
		s = strings.TrimLeft(s[end+1:], " \t\n\r")
		if s == "" {
			break
		}
		if s[0] != ',' {
			return fail(fmt.Sprintf("expected , or } after label %q", name))
		}
		s = s[1:]
	}
	sb.Sort()
	ls := sb.Labels()
	if ls.IsEmpty() {
		return fail("at least one label pair is required per stream")
	}
	if dup, ok := ls.HasDuplicateLabelNames(); ok {
		return fail(fmt.Sprintf("duplicate label name %q", dup))
	}
	return ls, nil
}

// jsonRequest is Loki's JSON push body.
type jsonRequest struct {
	Streams []struct {
		Stream map[string]string   `json:"stream"`
		Values [][]json.RawMessage `json:"values"`
	} `json:"streams"`
}

// decodeJSON decodes a JSON push body and appends its entries to out.
func (d *decoder) decodeJSON(body []byte, out []ferry.Entry) ([]ferry.Entry, error) {
	var req jsonRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return out, fmt.Errorf("json: %w", err)
	}
	for i, st := range req.Streams {
		if len(st.Stream) == 0 {
			return out, fmt.Errorf("json: stream %d: at least one label pair is required per stream", i)
		}
		var sb labels.ScratchBuilder
		for k, v := range st.Stream {
			if !model.LegacyValidation.IsValidLabelName(k) {
				return out, fmt.Errorf("json: stream %d: invalid label name %q", i, k)
			}
			sb.Add(k, v)
		}
		sb.Sort()
		ls := d.finish(sb.Labels())
		for j, v := range st.Values {
			if len(v) != 2 && len(v) != 3 {
				return out, fmt.Errorf("json: stream %d value %d: want [timestamp, line] or [timestamp, line, metadata], got %d elements", i, j, len(v))
			}
			var tss string
			if err := json.Unmarshal(v[0], &tss); err != nil {
				return out, fmt.Errorf("json: stream %d value %d: timestamp must be a string of Unix nanoseconds: %s", i, j, truncate(v[0]))
			}
			ns, err := strconv.ParseInt(tss, 10, 64)
			if err != nil {
				return out, fmt.Errorf("json: stream %d value %d: timestamp %q is not Unix nanoseconds", i, j, truncate([]byte(tss)))
			}
			e := ferry.Entry{Labels: ls, Timestamp: time.Unix(0, ns)}
			if err := json.Unmarshal(v[1], &e.Line); err != nil {
				return out, fmt.Errorf("json: stream %d value %d: line must be a string: %s", i, j, truncate(v[1]))
			}
			if len(v) == 3 {
				var md map[string]string
				if err := json.Unmarshal(v[2], &md); err != nil {
					return out, fmt.Errorf("json: stream %d value %d: structured metadata must be an object of strings: %s", i, j, truncate(v[2]))
				}
				if len(md) > 0 {
					d.sb.Reset()
					for k, val := range md {
						d.sb.Add(k, val)
					}
					d.sb.Sort()
					e.Metadata = d.sb.Labels()
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
