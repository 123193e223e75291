package dkim

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/filters/resolver"
)

// This file verifies signatures that carry a body length tag (l=), which
// go-msgauth refuses outright. It follows RFC 6376 §6.1 step by step and
// makes the same choices as go-msgauth v0.7.0 for everything else (tag
// parsing, required tags, i= within d=, From signed, sha256 only, RSA
// keys of 1024 bits or more, one key record per selector), so that a
// signature does not verify here that the library would refuse for
// another reason.

// message is a raw message split as go-msgauth splits it: header fields
// (each with its continuation lines, ending in CRLF) and the body.
type message struct {
	raw    []byte // what the library verifies
	fields []string
	body   []byte
}

// splitMessage splits raw. A message whose header does not end (no empty
// line) is read as if it ended with one, that is with an empty body: the
// library cannot read it otherwise, and RFC 5322 §3.5 allows a message
// without body.
func splitMessage(raw []byte) *message {
	if !bytes.Contains(raw, []byte("\r\n\r\n")) && !bytes.Contains(raw, []byte("\n\n")) && !bytes.HasPrefix(raw, []byte("\r\n")) {
		fixed := make([]byte, 0, len(raw)+4)
		fixed = append(fixed, raw...)
		if len(fixed) > 0 && !bytes.HasSuffix(fixed, []byte("\n")) {
			fixed = append(fixed, "\r\n"...)
		}
		raw = append(fixed, "\r\n"...)
	}
	m := &message{raw: raw}
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	tr := textproto.NewReader(br)
	for {
		l, err := tr.ReadLine()
		if err != nil || l == "" {
			break
		}
		if len(m.fields) > 0 && (l[0] == ' ' || l[0] == '\t') {
			m.fields[len(m.fields)-1] += l + "\r\n"
		} else {
			m.fields = append(m.fields, l+"\r\n")
		}
	}
	m.body = raw[len(raw)-br.Buffered()-src.Len():]
	return m
}

// signatures returns the indexes of the DKIM-Signature fields, topmost
// first, as the library finds them.
func (m *message) signatures() []int {
	var out []int
	for i, f := range m.fields {
		if strings.EqualFold(fieldName(f), "DKIM-Signature") {
			out = append(out, i)
		}
	}
	return out
}

// fieldName returns the name of a header field, without spaces.
func fieldName(f string) string {
	k, _, _ := strings.Cut(f, ":")
	return strings.TrimSpace(k)
}

// fieldValue returns the value of a header field, trimmed.
func fieldValue(f string) string {
	_, v, _ := strings.Cut(f, ":")
	return strings.TrimSpace(v)
}

// parseTags parses a tag list (RFC 6376 §3.2): "name=value" pairs
// separated by ";", whitespace around names and values ignored. A
// duplicate or empty name, or a pair without "=", is an error.
func parseTags(s string) (map[string]string, error) {
	tags := make(map[string]string)
	for _, spec := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(spec, "=")
		if !ok {
			if strings.TrimSpace(spec) == "" {
				continue
			}
			return tags, errors.New("malformed tag list")
		}
		k = strings.TrimSpace(k)
		if k == "" {
			return tags, errors.New("malformed tag list: empty tag name")
		}
		if _, dup := tags[k]; dup {
			return tags, fmt.Errorf("duplicate tag %q", k)
		}
		tags[k] = strings.TrimSpace(v)
	}
	return tags, nil
}

// stripWhitespace removes all white space (FWS) from s.
func stripWhitespace(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// permErr and failErr build verdicts.
func permErr(format string, a ...any) verdict {
	return verdict{value: filters.AuthPermError, reason: printable(fmt.Sprintf(format, a...))}
}

func failErr(reason string) verdict {
	return verdict{value: filters.AuthFail, reason: reason}
}

// requiredTags are the tags a signature must have (RFC 6376 §3.5).
var requiredTags = []string{"v", "a", "b", "bh", "d", "h", "s"}

// verifyLength verifies the signature in field idx of m, whose tags carry
// l=, at time now. lookup fetches the key record.
func verifyLength(m *message, idx int, tags map[string]string, lookup func(string) ([]string, error), now time.Time) verdict {
	// RFC 6376 §6.1.1: validate the signature field.
	if tags["v"] != "1" {
		return permErr("incompatible signature version")
	}
	for _, t := range requiredTags {
		if _, ok := tags[t]; !ok {
			return permErr("signature missing required tag %s=", t)
		}
	}
	domain := stripWhitespace(tags["d"])
	if i, ok := tags["i"]; ok {
		i = strings.ToLower(stripWhitespace(i))
		d := strings.ToLower(domain)
		if !strings.HasSuffix(i, "@"+d) && !strings.HasSuffix(i, "."+d) {
			return permErr("i= is not within d=")
		}
	}
	signed := strings.Split(tags["h"], ":")
	for i := range signed {
		signed[i] = stripWhitespace(signed[i])
	}
	if !slices.ContainsFunc(signed, func(h string) bool { return strings.EqualFold(h, "from") }) {
		return permErr("From field not signed")
	}
	if x, ok := tags["x"]; ok {
		exp, err := strconv.ParseInt(stripWhitespace(x), 10, 64)
		if err != nil {
			return permErr("malformed expiration time")
		}
		if now.Unix() > exp {
			return permErr("signature has expired")
		}
	}
	length, err := strconv.ParseInt(stripWhitespace(tags["l"]), 10, 64)
	if err != nil || length < 0 {
		return permErr("malformed body length")
	}
	if q, ok := tags["q"]; ok && !slices.Contains(strings.Split(stripWhitespace(q), ":"), "dns/txt") {
		return permErr("unsupported public key query method")
	}
	keyAlgo, hashAlgo, ok := strings.Cut(stripWhitespace(tags["a"]), "-")
	if !ok {
		return permErr("malformed algorithm name")
	}
	if hashAlgo != "sha256" {
		// RFC 8301 §3.1: rsa-sha1 must not be used for verifying.
		return permErr("unsupported hash algorithm %s", hashAlgo)
	}
	headerCan, bodyCan, ok := canonicalization(stripWhitespace(tags["c"]))
	if !ok {
		return permErr("unsupported canonicalization")
	}
	bodyHash, err := base64.StdEncoding.DecodeString(stripWhitespace(tags["bh"]))
	if err != nil {
		return permErr("malformed body hash")
	}
	sig, err := base64.StdEncoding.DecodeString(stripWhitespace(tags["b"]))
	if err != nil {
		return permErr("malformed signature")
	}

	// RFC 6376 §6.1.2: get the public key.
	key, v := fetchKey(stripWhitespace(tags["s"])+"._domainkey."+domain, lookup)
	if key == nil {
		return v
	}
	if key.algo != keyAlgo {
		return permErr("inappropriate key algorithm")
	}
	if key.hashes != nil && !slices.Contains(key.hashes, hashAlgo) {
		return permErr("inappropriate hash algorithm")
	}

	// RFC 6376 §6.1.3: compute the body hash over l octets, then the
	// header hash, and verify.
	body := canonicalBody(m.body, bodyCan)
	if int64(len(body)) < length {
		// RFC 6376 §3.4.5: a body shorter than l= (cut in transit)
		// cannot verify.
		return failErr("body is shorter than l=")
	}
	sum := sha256.Sum256(body[:length])
	if subtle.ConstantTimeCompare(sum[:], bodyHash) != 1 {
		return failErr("body hash did not verify")
	}
	h := sha256.New()
	for _, f := range pickFields(m.fields, signed) {
		h.Write([]byte(canonicalHeader(f, headerCan)))
	}
	self := canonicalHeader(withoutSignature(m.fields[idx]), headerCan)
	h.Write([]byte(strings.TrimRight(self, "\r\n")))
	hashed := h.Sum(nil)
	switch pub := key.pub.(type) {
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, hashed, sig) != nil {
			return failErr("signature did not verify")
		}
	case ed25519.PublicKey:
		// RFC 8463 §3: Ed25519 signs the SHA-256 hash.
		if !ed25519.Verify(pub, hashed, sig) {
			return failErr("signature did not verify")
		}
	}
	return verdict{value: filters.AuthPass, unsigned: int64(len(body)) - length}
}

// canonicalization parses the c= tag (RFC 6376 §3.5): header/body
// algorithm, each "simple" or "relaxed", simple by default. relaxed is
// returned as true.
func canonicalization(c string) (header, body bool, ok bool) {
	h, b, _ := strings.Cut(c, "/")
	parse := func(s string) (bool, bool) {
		switch s {
		case "", "simple":
			return false, true
		case "relaxed":
			return true, true
		}
		return false, false
	}
	header, okH := parse(h)
	body, okB := parse(b)
	return header, body, okH && okB
}

// canonicalBody returns body canonicalized (RFC 6376 §3.4.3, §3.4.4),
// lone LFs first made CRLF as the library does.
func canonicalBody(body []byte, relaxed bool) []byte {
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n", "\r\n"), "\r\n")
	if relaxed {
		for i, l := range lines {
			lines[i] = strings.TrimRight(collapseWSP(l), " ")
		}
	}
	// The split leaves one "" after a final CRLF; drop every trailing
	// empty line.
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		if relaxed {
			return nil // RFC 6376 §3.4.4, erratum 1384: an empty body is empty
		}
		return []byte("\r\n") // RFC 6376 §3.4.3: an empty body is one CRLF
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// collapseWSP turns every run of spaces and tabs in s into one space.
func collapseWSP(s string) string {
	var b strings.Builder
	wsp := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' {
			wsp = true
			continue
		}
		if wsp {
			b.WriteByte(' ')
			wsp = false
		}
		b.WriteByte(c)
	}
	if wsp {
		b.WriteByte(' ')
	}
	return b.String()
}

// canonicalHeader returns the field f (with its CRLF) canonicalized (RFC
// 6376 §3.4.1, §3.4.2).
func canonicalHeader(f string, relaxed bool) string {
	if !relaxed {
		return f
	}
	k, v, _ := strings.Cut(f, ":")
	v = strings.Join(strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " ")
	return strings.ToLower(strings.TrimSpace(k)) + ":" + v + "\r\n"
}

// pickFields returns the fields named in h, in that order, each name
// taking the next instance from the bottom of the header up (RFC 6376
// §5.4.2); a name with no instance left contributes nothing.
func pickFields(fields, h []string) []string {
	used := make(map[string]int)
	var out []string
	for _, name := range h {
		key := strings.ToLower(name)
		skip := used[key]
		for i := len(fields) - 1; i >= 0; i-- {
			if !strings.EqualFold(fieldName(fields[i]), key) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			used[key]++
			out = append(out, fields[i])
			break
		}
	}
	return out
}

// withoutSignature returns the DKIM-Signature field f with the value of
// its b= tag deleted (RFC 6376 §3.7): everything after "b=" up to the
// next ";" or the end.
func withoutSignature(f string) string {
	name, value, ok := strings.Cut(f, ":")
	if !ok {
		return f
	}
	specs := strings.Split(value, ";")
	for i, spec := range specs {
		k, _, ok := strings.Cut(spec, "=")
		if ok && strings.TrimSpace(k) == "b" {
			specs[i] = spec[:len(k)+1]
			if i == len(specs)-1 {
				// The field's CRLF is part of the last value.
				specs[i] += "\r\n"
			}
		}
	}
	return name + ":" + strings.Join(specs, ";")
}

// publicKey is a parsed key record (RFC 6376 §3.6.1).
type publicKey struct {
	pub    crypto.PublicKey
	algo   string   // "rsa" or "ed25519"
	hashes []string // h=, nil when absent
}

// fetchKey fetches and parses the key record at name. When it returns
// no key, the verdict says why.
func fetchKey(name string, lookup func(string) ([]string, error)) (*publicKey, verdict) {
	txts, err := lookup(name)
	switch {
	case resolver.IsNotFound(err):
		return nil, permErr("no key for signature")
	case err != nil:
		// Anything but a definitive answer may pass.
		return nil, verdict{value: filters.AuthTempError, reason: "key unavailable"}
	case len(txts) == 0:
		return nil, permErr("no key for signature")
	case len(txts) > 1:
		// RFC 6376 §3.6.2.2: several records give undefined results.
		return nil, permErr("multiple TXT records found for key")
	}
	k, err := parseKey(txts[0])
	if err != nil {
		return nil, permErr("%v", err)
	}
	return k, verdict{}
}

// parseKey parses a key record (RFC 6376 §3.6.1).
func parseKey(s string) (*publicKey, error) {
	tags, err := parseTags(s)
	if err != nil {
		return nil, fmt.Errorf("key record: %w", err)
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return nil, errors.New("incompatible public key version")
	}
	p, ok := tags["p"]
	if !ok {
		return nil, errors.New("key record without p=")
	}
	p = stripWhitespace(p)
	if p == "" {
		return nil, errors.New("key revoked")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, errors.New("key is not base64")
	}
	k := &publicKey{}
	switch stripWhitespace(tags["k"]) {
	case "", "rsa":
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			// RFC 6376 erratum 3017: RSAPublicKey is seen too.
			if pub, err = x509.ParsePKCS1PublicKey(der); err != nil {
				return nil, errors.New("key is not an RSA public key")
			}
		}
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("key is not an RSA public key")
		}
		if rk.Size()*8 < 1024 {
			// RFC 8301 §3.2.
			return nil, fmt.Errorf("key of %d bits is too short", rk.Size()*8)
		}
		k.pub, k.algo = rk, "rsa"
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, errors.New("malformed Ed25519 key")
		}
		k.pub, k.algo = ed25519.PublicKey(der), "ed25519"
	default:
		return nil, errors.New("unsupported key algorithm")
	}
	if h, ok := tags["h"]; ok {
		k.hashes = strings.Split(stripWhitespace(h), ":")
	}
	if s, ok := tags["s"]; ok {
		services := strings.Split(stripWhitespace(s), ":")
		if !slices.Contains(services, "*") && !slices.Contains(services, "email") {
			return nil, errors.New("key not meant for email")
		}
	}
	return k, nil
}
