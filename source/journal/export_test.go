package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ferrydev/ferry"
)

// exportEntry writes one entry in export format; fields whose value has a
// newline or is marked binary are written as binary fields.
func exportEntry(w *bytes.Buffer, fields [][2]string) {
	for _, f := range fields {
		if strings.ContainsAny(f[1], "\n\x00") {
			w.WriteString(f[0] + "\n")
			binary.Write(w, binary.LittleEndian, uint64(len(f[1])))
			w.WriteString(f[1] + "\n")
			continue
		}
		w.WriteString(f[0] + "=" + f[1] + "\n")
	}
	w.WriteString("\n")
}

func TestDecoder(t *testing.T) {
	var in bytes.Buffer
	exportEntry(&in, [][2]string{{"__CURSOR", "s=1;i=1"}, {"__REALTIME_TIMESTAMP", "1700000000000001"}, {"MESSAGE", "hello"}, {"EMPTY", ""}, {"EQ", "a=b"}})
	exportEntry(&in, [][2]string{{"__CURSOR", "s=1;i=2"}, {"MESSAGE", "multi\nline\x00bin"}, {"PRIORITY", "3"}})
	in.WriteString("\n\n") // stray empty lines
	in.WriteString("__CURSOR=s=1;i=3\nMESSAGE=last entry without its empty line\n")
	for _, name := range []string{"whole", "onebyte"} {
		var r io.Reader = bytes.NewReader(in.Bytes())
		if name == "onebyte" {
			r = iotest.OneByteReader(r)
		}
		d := NewDecoder(r)
		var got []string
		for {
			rec, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var s []string
			for _, f := range rec.Fields {
				s = append(s, fmt.Sprintf("%s=%q", f.Name, f.Value))
			}
			got = append(got, strings.Join(s, " "))
		}
		want := []string{
			`__CURSOR="s=1;i=1" __REALTIME_TIMESTAMP="1700000000000001" MESSAGE="hello" EMPTY="" EQ="a=b"`,
			`__CURSOR="s=1;i=2" MESSAGE="multi\nline\x00bin" PRIORITY="3"`,
			`__CURSOR="s=1;i=3" MESSAGE="last entry without its empty line"`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got  %q\n want %q", name, got, want)
		}
	}
}

func TestDecoderErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no name":          "=x\n\n",
		"truncated binary": "BIN\n\x05\x00\x00\x00\x00\x00\x00\x00ab",
		"binary no nl":     "BIN\n\x01\x00\x00\x00\x00\x00\x00\x00ax\n",
		"huge binary":      "BIN\n\xff\xff\xff\xff\xff\xff\xff\x7f",
		"cut length":       "BIN\n\x01\x00",
	} {
		d := NewDecoder(strings.NewReader(in))
		_, err := d.Next()
		if err == nil || err == io.EOF {
			t.Errorf("%s: err = %v", name, err)
		}
		if !errors.Is(err, ErrFormat) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: err = %v, want ErrFormat or ErrUnexpectedEOF", name, err)
		}
	}
	d := NewDecoder(strings.NewReader("A=" + strings.Repeat("x", 100) + "\n\n"))
	d.MaxFieldSize = 10
	if _, err := d.Next(); !errors.Is(err, ErrFormat) {
		t.Errorf("long text field: %v", err)
	}
}

func FuzzDecoder(f *testing.F) {
	var in bytes.Buffer
	exportEntry(&in, [][2]string{{"__CURSOR", "s=1;i=1"}, {"MESSAGE", "hello"}, {"BIN", "a\nb"}})
	f.Add(in.Bytes())
	f.Add([]byte("A=1\n\nB\n\x02\x00\x00\x00\x00\x00\x00\x00xy\n\n"))
	f.Add([]byte("BIN\n\xff\xff\xff\xff\xff\xff\xff\x7f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data))
		d.MaxFieldSize = 1 << 16
		for i := 0; i < 1<<16; i++ {
			rec, err := d.Next()
			if err != nil {
				return
			}
			if len(rec.Fields) == 0 {
				t.Fatal("empty record")
			}
			for _, fl := range rec.Fields {
				if len(fl.Name) == 0 {
					t.Fatal("field without name")
				}
			}
			// Building an entry from any record must not panic either.
			var e ferry.Entry
			(&builder{s: &Source{Format: FormatJSON}, names: map[string]string{}}).entry(rec, &e)
			(&builder{s: &Source{}, names: map[string]string{}}).entry(rec, &e)
		}
	})
}
