package heuristics

import (
	"context"
	"testing"
	"unicode/utf8"

	"github.com/moatmail/moat/filters"
)

// FuzzCheck runs the heuristics on arbitrary messages: no panic, no error
// on a message, and every symbol is declared, scored as configured, and
// has a printable UTF-8 reason.
func FuzzCheck(f *testing.F) {
	f.Add(plainMessage())
	f.Add(htmlMessage())
	f.Add(build(map[string]string{"X-Mailer": "Microsoft Outlook", "Subject": "=?utf-8?b?RlJFRSBDQVNI?=", "From": `"a@b.example" <c@d.example>`},
		"v.i.a.g.r.a http://0x7f.1/ http://a.example@1.2.3.4/ vi\u0430gra\n"))
	f.Add([]byte("Content-Type: text/html\r\n\r\n<a href=http://x.example>www.y.example</a><font color=#fff style='font-size:0'>x</font>"))
	cfg := DefaultConfig()
	cfg.Disabled = nil
	flt, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	scores := map[string]float64{}
	for _, r := range flt.rules {
		scores[r.name] = r.score
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		res, err := flt.Check(context.Background(), &filters.Input{Msg: filters.ParseMessage(raw)})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res.Symbols {
			want, ok := scores[s.Name]
			if !ok || s.Score != want {
				t.Errorf("symbol %s scored %v (declared %v, score %v)", s.Name, s.Score, ok, want)
			}
			if !utf8.ValidString(s.Reason) || len(s.Reason) > 4*120 {
				t.Errorf("reason %q", s.Reason)
			}
		}
	})
}
