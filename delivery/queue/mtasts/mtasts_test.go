package mtasts

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, text string
		want       string // "" for a valid policy, else a word of the error
	}{
		{"enforce", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n", ""},
		{"CRLF and blank lines", "version: STSv1\r\n\r\nmode: testing\r\nmx: a.example\r\nmax_age: 86400\r\n", ""},
		{"none needs no mx", "version: STSv1\nmode: none\nmax_age: 86400\n", ""},
		{"bad version", "version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", "version"},
		{"bad mode", "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n", "mode"},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: a\n", "max_age"},
		{"negative max_age", "version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n", "max_age"},
		{"no mx", "version: STSv1\nmode: enforce\nmax_age: 5\n", "mx"},
		{"not key: value", "version STSv1\n", "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(strings.NewReader(tt.text))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || ResultType(err) != "sts-policy-invalid" {
				t.Errorf("policy %+v, error %v; want sts-policy-invalid naming %q", p, err, tt.want)
			}
		})
	}
	p, _ := Parse(strings.NewReader("version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999999\n"))
	if p.MaxAge != maxMaxAge {
		t.Errorf("max_age not capped at a year: %v", p.MaxAge)
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "mx1.example.net": true,
		"example.net": false, "a.b.example.net": false, "other.example.com": false,
	} {
		if got := p.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n")
	f.Add("version: STSv1\nmode: none\nmax_age: 0\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(strings.NewReader(text))
		if err == nil && (p.MaxAge < 0 || p.MaxAge > maxMaxAge || p.Mode == "" || p.Mode != ModeNone && len(p.MX) == 0) {
			t.Errorf("accepted an invalid policy: %+v", p)
		}
	})
}
