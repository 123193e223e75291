package imapd

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

func TestResolve(t *testing.T) {
	sel := &selected{uids: []uint32{2, 3, 5, 9}, searchRes: imap.UIDSetNum(5, 9)}
	empty := &selected{}
	for _, tc := range []struct {
		name    string
		sel     *selected
		set     imap.NumSet
		want    []int
		wantBad bool
	}{
		{"seq all", sel, imap.SeqSet{{Start: 1, Stop: 0}}, []int{0, 1, 2, 3}, false},
		{"seq list", sel, imap.SeqSetNum(4, 2), []int{1, 3}, false},
		{"seq overlapping", sel, imap.SeqSet{{Start: 1, Stop: 2}, {Start: 2, Stop: 3}}, []int{0, 1, 2}, false},
		{"seq star", sel, imap.SeqSet{{Start: 0, Stop: 0}}, []int{3}, false},
		{"seq beyond", sel, imap.SeqSetNum(5), nil, true},
		{"seq star on empty", empty, imap.SeqSet{{Start: 1, Stop: 0}}, nil, true},
		{"uid range", sel, imap.UIDSet{{Start: 3, Stop: 0}}, []int{1, 2, 3}, false},
		{"uid gap", sel, imap.UIDSet{{Start: 6, Stop: 8}}, nil, false},
		{"uid above top is top", sel, imap.UIDSet{{Start: 10, Stop: 0}}, []int{3}, false},
		{"uid reversed", sel, imap.UIDSet{{Start: 5, Stop: 2}}, []int{0, 1, 2}, false},
		{"uid on empty", empty, imap.UIDSet{{Start: 1, Stop: 0}}, nil, false},
		{"saved result", sel, imap.SearchRes(), []int{2, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.sel.resolve(tc.set)
			if tc.wantBad {
				if imapType(err) != imap.StatusResponseTypeBad {
					t.Errorf("resolve(%v) error = %v, want BAD", tc.set, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("resolve(%v) = %v, want %v", tc.set, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("resolve(%v) = %v, want %v", tc.set, got, tc.want)
				}
			}
		})
	}
}

func TestPlanFetch(t *testing.T) {
	peek := func(s imap.PartSpecifier, part ...int) *imap.FetchItemBodySection {
		return &imap.FetchItemBodySection{Peek: true, Specifier: s, Part: part}
	}
	for _, tc := range []struct {
		name string
		o    imap.FetchOptions
		want fetchPlan
	}{
		{"flags only", imap.FetchOptions{Flags: true, UID: true}, fetchPlan{}},
		{"size needs the index only", imap.FetchOptions{RFC822Size: true}, fetchPlan{info: true}},
		{"BODY.PEEK[] streams", imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{peek("")}},
			fetchPlan{info: true, file: true}},
		{"BODY[] marks seen", imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}},
			fetchPlan{markSeen: true, info: true, file: true}},
		{"envelope reads the header", imap.FetchOptions{Envelope: true}, fetchPlan{info: true, file: true, header: true}},
		{"header fields read the header", imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{
			{Peek: true, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}}},
			fetchPlan{info: true, file: true, header: true}},
		{"body and envelope read once", imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{peek("")}},
			fetchPlan{info: true, file: true, whole: true}},
		{"a part needs the whole", imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{peek("", 1)}},
			fetchPlan{info: true, file: true, whole: true}},
		{"structure needs the whole", imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}},
			fetchPlan{info: true, file: true, whole: true}},
		{"binary marks seen", imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{{Part: []int{1}}}},
			fetchPlan{markSeen: true, info: true, file: true, whole: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			if got := planFetch(&o); got != tc.want {
				t.Errorf("planFetch = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStoreFlagsCanonical(t *testing.T) {
	for _, tc := range []struct {
		in      []imap.Flag
		want    string
		wantBad bool
	}{
		{[]imap.Flag{`\seen`, `\ANSWERED`, "$Label"}, `\Seen \Answered $Label`, false},
		{[]imap.Flag{`\Recent`, `\Draft`}, `\Draft`, false},
		{[]imap.Flag{`\Important`}, "", true},
		{nil, "", false},
	} {
		got, err := storeFlags(tc.in)
		if tc.wantBad {
			if imapType(err) != imap.StatusResponseTypeBad {
				t.Errorf("storeFlags(%v) error = %v, want BAD", tc.in, err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tc.want {
			t.Errorf("storeFlags(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestReadHeader(t *testing.T) {
	long := "X-Long: " + strings.Repeat("a", 9000) + "\r\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n\r\n"},
		{"lf", "A: 1\n\nbody\n", "A: 1\n\n"},
		{"no body", "A: 1\r\n", "A: 1\r\n"},
		{"long line", long + "\r\nbody", long + "\r\n"},
		{"blank-looking long line is not the end", "A: " + strings.Repeat("b", 5000) + "\r\n\r\nbody", "A: " + strings.Repeat("b", 5000) + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readHeader(strings.NewReader(tc.in))
			if err != nil || string(got) != tc.want {
				t.Errorf("readHeader = %q (%d bytes), %v; want %d bytes", got[:min(len(got), 40)], len(got), err, len(tc.want))
			}
		})
	}
}

func TestPartialRange(t *testing.T) {
	for _, tc := range []struct {
		size   int64
		p      *imap.SectionPartial
		off, n int64
		name   string
	}{
		{100, nil, 0, 100, "none"},
		{100, &imap.SectionPartial{Offset: 10, Size: 20}, 10, 20, "inside"},
		{100, &imap.SectionPartial{Offset: 90, Size: 20}, 90, 10, "past the end"},
		{100, &imap.SectionPartial{Offset: 100, Size: 5}, 0, 0, "at the end"},
		{100, &imap.SectionPartial{Offset: 500, Size: 5}, 0, 0, "beyond"},
	} {
		if off, n := partialRange(tc.size, tc.p); off != tc.off || n != tc.n {
			t.Errorf("%s: partialRange = %d, %d; want %d, %d", tc.name, off, n, tc.off, tc.n)
		}
	}
}

// countingConn records the writes that reach it.
type countingConn struct {
	net.Conn
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countingConn) Read([]byte) (int, error) { return 0, io.EOF }

func TestCorkConn(t *testing.T) {
	under := &countingConn{}
	c := &corkConn{Conn: under}
	c.Write([]byte("before "))
	c.cork()
	for i := 0; i < 100; i++ {
		c.Write([]byte("0123456789"))
	}
	if len(under.writes) != 1 {
		t.Fatalf("%d writes reached the socket while corked, want 1 (the one before)", len(under.writes))
	}
	big := bytes.Repeat([]byte("x"), corkSize+1)
	c.Write(big)
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(" after"))
	// before | 1000 bytes flushed to make room | the big write | after
	if len(under.writes) != 4 || len(under.writes[1]) != 1000 || len(under.writes[2]) != len(big) {
		sizes := make([]int, len(under.writes))
		for i, w := range under.writes {
			sizes[i] = len(w)
		}
		t.Errorf("write sizes %v, want [7 1000 %d 6]", sizes, len(big))
	}
	var all []byte
	for _, w := range under.writes {
		all = append(all, w...)
	}
	want := "before " + strings.Repeat("0123456789", 100) + string(big) + " after"
	if string(all) != want {
		t.Errorf("bytes reordered or lost: got %d bytes, want %d", len(all), len(want))
	}
	// A reply left corked (SELECT) goes out, in one write, when the
	// server reads the next command.
	under.writes = nil
	c.cork()
	c.Write([]byte("* 3 EXISTS\r\n"))
	c.Write([]byte("A1 OK SELECT completed\r\n"))
	if len(under.writes) != 0 {
		t.Fatalf("%d writes while corked", len(under.writes))
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read: %v", err)
	}
	if len(under.writes) != 1 || string(under.writes[0]) != "* 3 EXISTS\r\nA1 OK SELECT completed\r\n" {
		t.Errorf("before the read: writes %q, want the reply in one", under.writes)
	}
	var nilCork *corkConn
	nilCork.cork()
	if err := nilCork.uncork(); err != nil {
		t.Errorf("nil corkConn: %v", err)
	}
}
