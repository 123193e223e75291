package content

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// nested returns a message of n multiparts, each inside the one before,
// with "deep secret" in the innermost. sameBoundary uses one boundary for
// every level.
func nested(n int, sameBoundary bool) []byte {
	var head, tail strings.Builder
	head.WriteString("Subject: bomb\r\nMIME-Version: 1.0\r\n")
	tails := make([]string, n)
	for i := range n {
		b := fmt.Sprintf("b%d", i)
		if sameBoundary {
			b = "b"
		}
		fmt.Fprintf(&head, "Content-Type: multipart/mixed; boundary=%s\r\n\r\n--%s\r\n", b, b)
		tails[i] = "\r\n--" + b + "--\r\n"
	}
	head.WriteString("Content-Type: text/plain\r\n\r\ndeep secret")
	for i := n - 1; i >= 0; i-- {
		tail.WriteString(tails[i])
	}
	return []byte(head.String() + tail.String())
}

// TestNestedBomb walks 10,000 nested multiparts: the walk stops at the
// depth limit and says so.
func TestNestedBomb(t *testing.T) {
	tests := []struct {
		name         string
		raw          []byte
		lim          Limits
		wantKinds    []AnomalyKind
		wantText     string
		maxAnomalies int
	}{
		{"distinct boundaries", nested(10000, false), Limits{}, []AnomalyKind{TooDeep}, "", 1},
		{"one boundary for all", nested(10000, true), Limits{}, []AnomalyKind{TooManyParts}, "", 3},
		{"within the limit", nested(10, false), Limits{}, nil, "deep secret", 0},
		{"limit lowered", nested(10, false), Limits{MaxDepth: 5}, []AnomalyKind{TooDeep}, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Walk(tt.raw, tt.lim)
			for _, k := range tt.wantKinds {
				if !c.Has(k) {
					t.Errorf("no %s in %+v", k, c.Anomalies)
				}
			}
			if len(tt.wantKinds) == 0 && len(c.Anomalies) != 0 {
				t.Errorf("anomalies %+v", c.Anomalies)
			}
			if len(c.Anomalies) > tt.maxAnomalies {
				t.Errorf("%d anomalies, want at most %d: %+v", len(c.Anomalies), tt.maxAnomalies, c.Anomalies)
			}
			if c.Text != tt.wantText {
				t.Errorf("text %q, want %q", c.Text, tt.wantText)
			}
		})
	}
}

// TestManyPartsBomb walks a multipart of 200,000 empty parts: no more
// than MaxParts are walked.
func TestManyPartsBomb(t *testing.T) {
	body := strings.Repeat("--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n", 200000) + "--b--\r\n"
	raw := msg("Content-Type: multipart/mixed; boundary=b\n", "") // header only
	raw = append(raw, body...)
	for _, lim := range []Limits{{}, {MaxParts: 10}} {
		c := Walk(raw, lim)
		max := lim.withDefaults().MaxParts
		if !c.Has(TooManyParts) {
			t.Errorf("MaxParts %d: no %s in %+v", max, TooManyParts, c.Anomalies)
		}
		// The message itself is a part: max-1 attachments.
		if len(c.Attachments) != max-1 {
			t.Errorf("MaxParts %d: %d attachments", max, len(c.Attachments))
		}
	}
}

// zeroRun returns a message whose second part is a base64 run of zero
// bytes decoding to n bytes, with a small text part before and a small
// attachment after. The run is one line, doubled in place in a buffer
// allocated once.
func zeroRun(n int) []byte {
	const perLine = 57 // bytes per 76-character base64 line
	head := "Subject: zeros\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n" +
		"--z\r\nContent-Type: text/plain\r\n\r\nbefore\r\n" +
		"--z\r\nContent-Type: application/octet-stream\r\n" +
		"Content-Disposition: attachment; filename=zeros.bin; size=104857600\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n"
	tail := "--z\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=after.pdf\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--z--\r\n"
	line := strings.Repeat("A", 76) + "\r\n"
	runLen := n / perLine * len(line)
	b := make([]byte, len(head)+runLen+len(tail))
	copy(b, head)
	run := b[len(head) : len(head)+runLen]
	done := copy(run, line)
	for done < len(run) {
		done += copy(run[done:], run[:done])
	}
	copy(b[len(head)+runLen:], tail)
	return b
}

// TestZeroRunBomb walks a part that decodes to 100 MB of zeros and says
// it is 100 MB (Content-Disposition size, RFC 2183 §2.7): the walk
// decodes neither it nor anything the size parameter suggests, and still
// reads the parts around it.
func TestZeroRunBomb(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 140 MB message")
	}
	raw := zeroRun(100 << 20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c := Walk(raw, Limits{})
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("the walk allocated %d bytes", got)
	}
	if want := []AnomalyKind{TooLarge, AttachmentCutOff}; !slices.Equal(kinds(c), want) {
		t.Errorf("anomalies %+v, want %v", c.Anomalies, want)
	}
	if c.Text != "before" {
		t.Errorf("text %q", c.Text)
	}
	checkAttachments(t, c, []wantAttachment{
		{name: "zeros.bin", typ: "application/octet-stream", depth: 1, cut: true},
		{name: "after.pdf", typ: "application/pdf", depth: 1, data: "%PDF-1.4\n"},
	})
	// The bound counts the line breaks as if they were base64.
	if s := c.Attachments[0].Size; s < 100<<20 || s > 105<<20 {
		t.Errorf("cut attachment size %d, want 100 MiB to 105 MiB", s)
	}
}

// TestZeroRunWithinBudget decodes a smaller run under a larger budget:
// the data is there, and its size is the decoded size, not the declared
// one.
func TestZeroRunWithinBudget(t *testing.T) {
	raw := zeroRun(57 * 1000)
	c := Walk(raw, Limits{})
	if len(c.Anomalies) != 0 {
		t.Fatalf("anomalies %+v", c.Anomalies)
	}
	a := c.Attachments[0]
	if a.Size != 57000 || len(a.Data) != 57000 || bytes.IndexFunc(a.Data, func(r rune) bool { return r != 0 }) >= 0 {
		t.Errorf("zeros: size %d, %d bytes", a.Size, len(a.Data))
	}
	c = Walk(raw, Limits{MaxDecodedBytes: 50000})
	if want := []AnomalyKind{TooLarge, AttachmentCutOff}; !slices.Equal(kinds(c), want) || c.Attachments[0].Data != nil || c.Attachments[1].Data == nil {
		t.Errorf("budget 50000: anomalies %+v", c.Anomalies)
	}
}

// TestEncodedLayersCut: message/rfc822 layers each quoted-printable
// encoded (RFC 2045 §6.4 forbids it; malware does it so that a scanner
// gives up) cost the decoded-bytes budget once per layer. The layer the
// budget cannot afford is listed as a cut attachment, so that what it
// hides is not silently dropped.
func TestEncodedLayersCut(t *testing.T) {
	payload := "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Repeat("TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n", 2000)
	body := payload
	for range 20 {
		body = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + body
	}
	c := Walk([]byte("Subject: layers\r\n"+body), Limits{MaxDecodedBytes: 1 << 20})
	if !slices.Contains(kinds(c), AttachmentCutOff) {
		t.Fatalf("anomalies %+v, want %s", c.Anomalies, AttachmentCutOff)
	}
	var cut *Attachment
	for i := range c.Attachments {
		if c.Attachments[i].DeclaredType == "message/rfc822" && c.Attachments[i].Data == nil {
			cut = &c.Attachments[i]
		}
	}
	if cut == nil || cut.Size <= 0 || cut.Depth == 0 {
		t.Fatalf("attachments %+v, want the cut message/rfc822 layer listed with its size and depth", c.Attachments)
	}
}

// TestCharsetGrowthCounted: windows-1252 text of 0x80 bytes triples when
// converted to UTF-8 (each becomes "€"); the growth counts against the
// decoded-bytes budget, so the attachment after it is cut, not decoded.
func TestCharsetGrowthCounted(t *testing.T) {
	text := strings.Repeat("\x80", 40000)
	raw := "Subject: euros\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=windows-1252\r\n\r\n" + text + "\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n" +
		strings.Repeat("x", 30000) + "\r\n--b--\r\n"
	c := Walk([]byte(raw), Limits{MaxDecodedBytes: 100000})
	if !strings.Contains(c.Text, "€€€") {
		t.Fatalf("text not converted: %.40q", c.Text)
	}
	if !slices.Contains(kinds(c), AttachmentCutOff) || len(c.Attachments) != 1 || c.Attachments[0].Data != nil {
		t.Fatalf("anomalies %+v, attachments %d: want a.bin cut after 40,000 bytes became 120,000", c.Anomalies, len(c.Attachments))
	}
	// The same message within budget decodes both.
	c = Walk([]byte(raw), Limits{MaxDecodedBytes: 200000})
	if slices.Contains(kinds(c), AttachmentCutOff) || len(c.Attachments) != 1 || c.Attachments[0].Data == nil {
		t.Fatalf("within budget: anomalies %+v", c.Anomalies)
	}
}
