package content

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzWalk walks arbitrary input under default and under small limits:
// no panic, and every bound and promise of Content holds.
func FuzzWalk(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join(fixtures, "*.eml"))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, false)
		f.Add(raw, true)
	}
	f.Add(nested(30, false), true)
	f.Add(nested(30, true), false)
	f.Add(msg("Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: base64\n", "LS1iDQoNCmhpZGRlbg0KLS1iLS0NCg==\n"), false)
	f.Add(msg("Content-Type: text/html; charset=koi8-r\n", "<a href=http://x>\xc4</a><script>s</script>"), true)

	small := Limits{MaxDepth: 4, MaxParts: 20, MaxDecodedBytes: 4096, MaxTextBytes: 256}
	f.Fuzz(func(t *testing.T, raw []byte, useSmall bool) {
		lim := DefaultLimits()
		if useSmall {
			lim = small
		}
		c := Walk(raw, lim)
		if !utf8.ValidString(c.Text) {
			t.Errorf("text is not UTF-8: %q", c.Text)
		}
		if len(c.Text) > lim.MaxTextBytes {
			t.Errorf("text of %d bytes, limit %d", len(c.Text), lim.MaxTextBytes)
		}
		if len(c.Parts) > MaxTextParts || len(c.Anchors) > MaxAnchors {
			t.Errorf("%d parts, %d anchors: over the bounds", len(c.Parts), len(c.Anchors))
		}
		for _, a := range c.Anchors {
			if len(a.Text) > MaxAnchorText || a.Href == "" {
				t.Errorf("anchor %+v", a)
			}
		}
		if len(c.URLs) > MaxURLs {
			t.Errorf("%d URLs", len(c.URLs))
		}
		for i, u := range c.URLs {
			if len(u) > MaxURLBytes || u == "" || slices.Contains(c.URLs[:i], u) {
				t.Errorf("URL %d %q: too long, empty or repeated", i, u)
			}
		}
		var decoded int64
		for i, a := range c.Attachments {
			if a.Data != nil && a.Size != int64(len(a.Data)) {
				t.Errorf("attachment %d: size %d, %d bytes", i, a.Size, len(a.Data))
			}
			decoded += int64(len(a.Data))
			if a.Depth < 0 || a.Depth > lim.MaxDepth {
				t.Errorf("attachment %d at depth %d", i, a.Depth)
			}
		}
		if decoded > lim.MaxDecodedBytes {
			t.Errorf("attachments hold %d decoded bytes, limit %d", decoded, lim.MaxDecodedBytes)
		}
		if len(c.Attachments) >= lim.MaxParts {
			t.Errorf("%d attachments, part limit %d", len(c.Attachments), lim.MaxParts)
		}
		var seen []AnomalyKind
		for _, a := range c.Anomalies {
			if !slices.Contains(AnomalyKinds, a.Kind) || slices.Contains(seen, a.Kind) {
				t.Errorf("anomaly %q unknown or repeated", a.Kind)
			}
			seen = append(seen, a.Kind)
			for _, b := range []byte(a.Detail) {
				if b < 0x20 || b > 0x7e {
					t.Errorf("detail %q not printable", a.Detail)
					break
				}
			}
		}
	})
}
