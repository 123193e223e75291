package dkim

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/moatmail/moat/filters"
)

// bodies are edge cases of body canonicalization (RFC 6376 §3.4.3,
// §3.4.4).
var bodies = []string{
	"",
	"\r\n",
	"\r\n\r\n\r\n",
	"one line without end",
	"Hello\r\n",
	"Hello  \t world \t\r\n\r\n\r\n",
	" leading\r\n\ttab\r\n \r\n\t\r\nend\r\n \r\n",
	"bare\nline\nends\n",
	"mixed\r\nends\n\n",
	"trailing blanks   ",
	"a\r\n\r\n\r\nb\r\n",
}

// TestCanonicalBody checks the body canonicalization of the l= path
// against go-msgauth's: the hash of canonicalBody must be the bh= the
// library signs.
func TestCanonicalBody(t *testing.T) {
	k := testKeys(t)
	for _, relaxed := range []bool{false, true} {
		for _, body := range bodies {
			msg := "From: a@gen.dkim.test\r\nSubject: s\r\n\r\n" + body
			signed := sign(t, msg, "gen.dkim.test", "ed", k.ed, func(o *msgauth.SignOptions) {
				if !relaxed {
					o.BodyCanonicalization = msgauth.CanonicalizationSimple
				}
			})
			m := splitMessage([]byte(signed))
			tags, err := parseTags(fieldValue(m.fields[m.signatures()[0]]))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(canonicalBody(m.body, relaxed))
			if got := base64.StdEncoding.EncodeToString(sum[:]); got != stripWhitespace(tags["bh"]) {
				t.Errorf("relaxed=%v body %q: canonical %q hashes to %s, the library signed %s",
					relaxed, body, canonicalBody(m.body, relaxed), got, tags["bh"])
			}
		}
	}
}

// TestVerifyLengthAgainstLibrary runs the l= verifier on signatures made
// by go-msgauth, given an l= covering the whole body: header picking and
// canonicalization must agree with the library's signer.
func TestVerifyLengthAgainstLibrary(t *testing.T) {
	k := testKeys(t)
	f, _ := setup(t, DefaultConfig())
	lookup := func(name string) ([]string, error) { return f.dns.LookupTXT(t.Context(), name) }
	// A header with repeated fields: picked from the bottom up.
	msg := crlf("Received: one\nFrom: Alice <alice@gen.dkim.test>\nSubject:  Folded\n  \tsubject \nReceived: two\nTo: bob@example.net\n\nBody  text \n\n")
	for _, tc := range []struct {
		name   string
		header msgauth.Canonicalization
		body   msgauth.Canonicalization
		keys   []string
		key    string
	}{
		{"relaxed/relaxed rsa", msgauth.CanonicalizationRelaxed, msgauth.CanonicalizationRelaxed, signedHeaders, "rsa"},
		{"simple/simple ed", msgauth.CanonicalizationSimple, msgauth.CanonicalizationSimple, signedHeaders, "ed"},
		{"relaxed/simple, repeated fields", msgauth.CanonicalizationRelaxed, msgauth.CanonicalizationSimple,
			[]string{"From", "Received", "Received", "Received", "Subject", "X-Absent"}, "ed"},
		{"simple/relaxed, all fields", msgauth.CanonicalizationSimple, msgauth.CanonicalizationRelaxed, nil, "rsa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer := map[string]crypto.Signer{"rsa": k.rsa, "ed": k.ed}[tc.key]
			signed := sign(t, msg, "gen.dkim.test", tc.key, signer, func(o *msgauth.SignOptions) {
				o.HeaderCanonicalization, o.BodyCanonicalization, o.HeaderKeys = tc.header, tc.body, tc.keys
			})
			m := splitMessage([]byte(signed))
			idx := m.signatures()[0]
			tags, err := parseTags(fieldValue(m.fields[idx]))
			if err != nil {
				t.Fatal(err)
			}
			_, bodyCan, _ := canonicalization(tags["c"])
			tags["l"] = strconv.Itoa(len(canonicalBody(m.body, bodyCan)))
			if v := verifyLength(m, idx, tags, lookup, time.Now()); v.value != filters.AuthPass || v.unsigned != 0 {
				t.Fatalf("verdict %+v, want pass", v)
			}
			m = splitMessage([]byte(strings.Replace(signed, "Folded", "Fooled", 1)))
			if v := verifyLength(m, idx, tags, lookup, time.Now()); v.value != filters.AuthFail {
				t.Errorf("the signed Subject altered: verdict %+v, want fail", v)
			}
		})
	}
}

func TestWithoutSignature(t *testing.T) {
	tests := []struct{ in, want string }{
		{"DKIM-Signature: a=1; b=abc; c=2\r\n", "DKIM-Signature: a=1; b=; c=2\r\n"},
		{"DKIM-Signature: a=1; bh=xyz; b=ab\r\n c\r\n", "DKIM-Signature: a=1; bh=xyz; b=\r\n"},
		{"DKIM-Signature: a=1; b =ab;\r\n", "DKIM-Signature: a=1; b =;\r\n"},
		{"DKIM-Signature: z=b=x; b=y\r\n", "DKIM-Signature: z=b=x; b=\r\n"},
		{"no colon", "no colon"},
	}
	for _, tt := range tests {
		if got := withoutSignature(tt.in); got != tt.want {
			t.Errorf("withoutSignature(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	ed := "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
	tests := []struct {
		rec  string
		algo string // "" for an error
	}{
		{"v=DKIM1; k=ed25519; " + ed, "ed25519"},
		{"k=ed25519; h=sha256; s=email; " + ed, "ed25519"},
		{"k=ed25519; s=*; " + ed, "ed25519"},
		{"k=ed25519; s=http; " + ed, ""},
		{"v=DKIM2; k=ed25519; " + ed, ""},
		{"k=ed25519", ""},
		{"k=ed25519; p=", ""},
		{"k=ed25519; p=AAAA", ""},
		{"k=rsa; p=AAAA", ""},
		{"k=ed25519; " + ed + "; " + ed, ""},
		{"garbage", ""},
	}
	for _, tt := range tests {
		k, err := parseKey(tt.rec)
		switch {
		case tt.algo == "" && err == nil:
			t.Errorf("parseKey(%q) accepted", tt.rec)
		case tt.algo != "" && (err != nil || k.algo != tt.algo):
			t.Errorf("parseKey(%q) = %+v, %v; want %s", tt.rec, k, err, tt.algo)
		}
	}
}
