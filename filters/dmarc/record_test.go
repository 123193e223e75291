package dmarc

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	def := func(change func(*Record)) *Record {
		r := &Record{Policy: PolicyNone, DKIM: AlignRelaxed, SPF: AlignRelaxed, Percent: 100}
		change(r)
		return r
	}
	tests := []struct {
		txt  string
		want *Record // nil for an error
		not  bool    // the error is errNotDMARC
	}{
		{"v=DMARC1; p=none", def(func(*Record) {}), false},
		{"v=DMARC1;p=reject", def(func(r *Record) { r.Policy = PolicyReject }), false},
		{"v=DMARC1; p=reject;", def(func(r *Record) { r.Policy = PolicyReject }), false},
		{" v = DMARC1 ; p = quarantine ; ", def(func(r *Record) { r.Policy = PolicyQuarantine }), false},
		{"V=DMARC1; P=REJECT; SP=Quarantine; ADKIM=S; ASPF=s; PCT=5", def(func(r *Record) {
			r.Policy, r.SubdomainPolicy, r.DKIM, r.SPF, r.Percent = PolicyReject, PolicyQuarantine, AlignStrict, AlignStrict, 5
		}), false},
		{"v=DMARC1; p=reject; pct=0", def(func(r *Record) { r.Policy, r.Percent = PolicyReject, 0 }), false},
		{"v=DMARC1; p=reject; pct=100", def(func(r *Record) { r.Policy = PolicyReject }), false},
		{"v=DMARC1; p=none; rua=mailto:a@x.test, mailto:b@y.test!10m", def(func(r *Record) {
			r.ReportAggregate = []string{"mailto:a@x.test", "mailto:b@y.test!10m"}
		}), false},
		// unknown tags and reporting values moat does not use: ignored
		{"v=DMARC1; p=none; fo=bogus; rf=xml; ri=-1; ruf=::; future=yes", def(func(*Record) {}), false},
		// §6.6.3: a bad p= or sp= with a valid rua reads as p=none
		{"v=DMARC1; p=bogus; rua=mailto:d@x.test", def(func(r *Record) { r.ReportAggregate = []string{"mailto:d@x.test"} }), false},
		{"v=DMARC1; rua=mailto:d@x.test", def(func(r *Record) { r.ReportAggregate = []string{"mailto:d@x.test"} }), false},
		{"v=DMARC1; p=reject; sp=bogus; rua=mailto:d@x.test", def(func(r *Record) { r.ReportAggregate = []string{"mailto:d@x.test"} }), false},
		// errors
		{"v=DMARC1; p=bogus", nil, false},
		{"v=DMARC1", nil, false},
		{"v=DMARC1; p=reject; sp=bogus", nil, false},
		{"v=DMARC1; p=bogus; rua=not a uri", nil, false},
		{"v=DMARC1; p=reject; adkim=x", nil, false},
		{"v=DMARC1; p=reject; aspf=", nil, false},
		{"v=DMARC1; p=reject; pct=101", nil, false},
		{"v=DMARC1; p=reject; pct=-1", nil, false},
		{"v=DMARC1; p=reject; pct=+5", nil, false},
		{"v=DMARC1; p=reject; pct=0050", nil, false},
		{"v=DMARC1; p=reject; pct=", nil, false},
		{"v=DMARC1; p=reject; p=none", nil, false},
		{"v=DMARC1; p=reject; junk", nil, false},
		{"v=DMARC1; p=reject; =x", nil, false},
		// not DMARC records at all
		{"", nil, true},
		{"p=reject; v=DMARC1", nil, true},
		{"v=DMARC2; p=reject", nil, true},
		{"v=dmarc1; p=reject", nil, true},
		{"v=spf1 -all", nil, true},
		{"hello", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseRecord(tt.txt)
		switch {
		case tt.want == nil && err == nil:
			t.Errorf("ParseRecord(%q) = %+v, want an error", tt.txt, got)
		case tt.want == nil && errors.Is(err, errNotDMARC) != tt.not:
			t.Errorf("ParseRecord(%q): error %v, want errNotDMARC %v", tt.txt, err, tt.not)
		case tt.want != nil && (err != nil || !reflect.DeepEqual(got, tt.want)):
			t.Errorf("ParseRecord(%q) = %+v, %v; want %+v", tt.txt, got, err, tt.want)
		}
	}
}

// FuzzParseRecord: the parser must never panic, and what it accepts must
// hold only values the evaluation knows.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=DMARC1; p=none", "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=50",
		"v=DMARC1; p=bogus; rua=mailto:d@x.test!10m", "v=DMARC1;;;p=reject;;", "v=DMARC1; p=reject; pct=0",
		"p=reject; v=DMARC1", "v=DMARC1; rua=mailto:a@b,mailto:c@d", "v = DMARC1 ; P = Reject", "",
	} {
		f.Add(s)
	}
	policies := map[Policy]bool{PolicyNone: true, PolicyQuarantine: true, PolicyReject: true}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			if r != nil {
				t.Errorf("record %+v with error %v", r, err)
			}
			return
		}
		if !strings.Contains(txt, "DMARC1") || !policies[r.Policy] ||
			(r.SubdomainPolicy != "" && !policies[r.SubdomainPolicy]) ||
			(r.DKIM != AlignRelaxed && r.DKIM != AlignStrict) || (r.SPF != AlignRelaxed && r.SPF != AlignStrict) ||
			r.Percent < 0 || r.Percent > 100 {
			t.Errorf("ParseRecord(%q) = %+v", txt, r)
		}
	})
}
