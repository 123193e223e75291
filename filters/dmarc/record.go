package dmarc

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// This parser replaces go-msgauth/dmarc's Parse, which differs from RFC
// 7489 where it matters to a receiver: it does not require v=DMARC1 to be
// the first tag (§6.4), it compares keywords case-sensitively although
// ABNF literals are case-insensitive (RFC 5234 §2.3), it refuses a whole
// record for a bad value of a reporting tag moat does not use (rf, ri,
// fo), and it has no way to apply §6.6.3's rule for a bad p= or sp= (act
// as p=none when rua holds a valid URI). Its Lookup also takes the first
// of several records instead of none.

// Policy is a Domain Owner's requested handling of failing mail (RFC 7489
// §6.3 p=, sp=).
type Policy string

// The policies.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// Alignment is an identifier alignment mode (RFC 7489 §3.1, adkim=,
// aspf=).
type Alignment string

// The alignment modes.
const (
	AlignRelaxed Alignment = "r"
	AlignStrict  Alignment = "s"
)

// Record is what a receiver needs of a DMARC policy record (RFC 7489
// §6.3). Reporting tags other than rua are not kept: moat sends no
// reports.
type Record struct {
	// Policy is p=.
	Policy Policy
	// SubdomainPolicy is sp=, or "" when absent (then Policy applies).
	SubdomainPolicy Policy
	// DKIM and SPF are adkim= and aspf=, relaxed by default.
	DKIM, SPF Alignment
	// Percent is pct=, 100 by default.
	Percent int
	// ReportAggregate is rua=, the URIs as given.
	ReportAggregate []string
}

// errNotDMARC: the text does not start with v=DMARC1; RFC 7489 §6.6.3
// discards such records.
var errNotDMARC = errors.New("not a DMARC record (no leading v=DMARC1)")

// ParseRecord parses the text of a _dmarc TXT record (RFC 7489 §6.3,
// §6.4). Unknown tags are ignored; so are the values of fo, rf, ri and
// ruf. A p= or sp= that is missing or invalid is read as p=none when rua
// holds at least one valid URI (§6.6.3), and is an error otherwise.
func ParseRecord(txt string) (*Record, error) {
	// The version first: any other TXT record at _dmarc, however
	// malformed, is discarded, not a broken DMARC record.
	first, _, _ := strings.Cut(txt, ";")
	if k, v, ok := strings.Cut(first, "="); !ok || strings.ToLower(strings.Trim(k, " \t\r\n")) != "v" || strings.Trim(v, " \t\r\n") != "DMARC1" {
		return nil, errNotDMARC
	}
	tags, err := splitTags(txt)
	if err != nil {
		return nil, err
	}
	r := &Record{DKIM: AlignRelaxed, SPF: AlignRelaxed, Percent: 100}
	seen := make(map[string]bool, len(tags))
	var badPolicy error
	for _, t := range tags[1:] {
		if seen[t.name] {
			return nil, fmt.Errorf("tag %s= given twice", t.name)
		}
		seen[t.name] = true
		switch t.name {
		case "p", "sp":
			p, ok := parsePolicy(t.value)
			if !ok {
				badPolicy = fmt.Errorf("%s=%q is not none, quarantine or reject", t.name, t.value)
				continue
			}
			if t.name == "p" {
				r.Policy = p
			} else {
				r.SubdomainPolicy = p
			}
		case "adkim", "aspf":
			a := Alignment(strings.ToLower(t.value))
			if a != AlignRelaxed && a != AlignStrict {
				return nil, fmt.Errorf("%s=%q is not r or s", t.name, t.value)
			}
			if t.name == "adkim" {
				r.DKIM = a
			} else {
				r.SPF = a
			}
		case "pct":
			n, err := strconv.Atoi(t.value)
			if err != nil || len(t.value) > 3 || t.value[0] < '0' || t.value[0] > '9' || n > 100 {
				return nil, fmt.Errorf("pct=%q is not a number from 0 to 100", t.value)
			}
			r.Percent = n
		case "rua":
			for u := range strings.SplitSeq(t.value, ",") {
				r.ReportAggregate = append(r.ReportAggregate, strings.TrimSpace(u))
			}
		}
	}
	if r.Policy == "" && badPolicy == nil {
		badPolicy = errors.New("no p= tag")
	}
	if badPolicy != nil {
		// RFC 7489 §6.6.3: with a usable report address, act as if
		// p=none was published; otherwise apply no DMARC processing.
		if !r.hasReportURI() {
			return nil, badPolicy
		}
		r.Policy, r.SubdomainPolicy = PolicyNone, ""
	}
	return r, nil
}

// tag is one name=value pair of a record, the name in lower case.
type tag struct{ name, value string }

// splitTags splits a tag list (RFC 7489 §6.4: "name=value" separated by
// ";" with optional white space, a final ";" allowed).
func splitTags(s string) ([]tag, error) {
	var out []tag
	for spec := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(spec, "=")
		if !ok {
			if strings.Trim(spec, " \t\r\n") == "" {
				continue
			}
			return nil, errors.New("malformed tag list")
		}
		k = strings.ToLower(strings.Trim(k, " \t\r\n"))
		if k == "" {
			return nil, errors.New("empty tag name")
		}
		out = append(out, tag{k, strings.Trim(v, " \t\r\n")})
	}
	return out, nil
}

// parsePolicy parses a p= or sp= value, case-insensitively.
func parsePolicy(s string) (Policy, bool) {
	switch p := Policy(strings.ToLower(s)); p {
	case PolicyNone, PolicyQuarantine, PolicyReject:
		return p, true
	}
	return "", false
}

// hasReportURI reports whether rua holds a syntactically valid URI (RFC
// 7489 §6.4: a URI with an optional "!size" suffix).
func (r *Record) hasReportURI() bool {
	for _, u := range r.ReportAggregate {
		if i := strings.LastIndexByte(u, '!'); i >= 0 {
			u = u[:i]
		}
		if p, err := url.Parse(u); err == nil && p.Scheme != "" && p.Opaque+p.Host+p.Path != "" {
			return true
		}
	}
	return false
}
