// Package address reads envelope addresses: the mailboxes of SMTP's
// reverse-path and forward-path (RFC 5321 §4.1.2), which may carry UTF-8
// in the local part and the domain (RFC 6531 §3.3). It is a leaf: it
// imports nothing of moat, so that the gateway, the filters, the policies
// and the mailbox store all read an address the same way.
//
// The check is deliberately lenient (see Valid): moat delivers to its own
// users and judges senders by their address as written, it does not
// relay, so it refuses only what no mail system could route.
package address

import "strings"

// MaxLength is the longest address Valid accepts: 254 octets, the
// longest forward-path (256, RFC 5321 §4.5.3.1.3) without its angle
// brackets.
const MaxLength = 254

// Normalize returns the canonical form of an address used as a user name
// or an allow-list entry: trimmed and lower-cased. Local parts are
// compared case-insensitively, as nearly every receiving site does,
// although RFC 5321 §2.4 lets a server treat them as case-sensitive.
func Normalize(addr string) string {
	return strings.ToLower(strings.TrimSpace(addr))
}

// Valid reports whether addr looks like local@domain: both parts
// non-empty, at most MaxLength octets, no space, control character, angle
// bracket or double quote anywhere (so no quoted local part, RFC 5321
// §4.1.2 Quoted-string, which moat's users never have), and no empty
// label ("..") in the domain. Any other octet passes, UTF-8 included
// (RFC 6531 §3.3).
func Valid(addr string) bool {
	local, domain, ok := Split(addr)
	if !ok || local == "" || domain == "" || len(addr) > MaxLength {
		return false
	}
	for _, r := range addr {
		if r <= ' ' || r == '<' || r == '>' || r == '"' || r == 0x7f {
			return false
		}
	}
	return !strings.Contains(domain, "..")
}

// Split cuts addr at its last '@' into the local part and the domain; ok
// is false when there is no '@'. The last one, because a quoted local
// part may hold an '@' (RFC 5321 §4.1.2) and a domain never does. Split
// does not allocate.
func Split(addr string) (local, domain string, ok bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr, "", false
	}
	return addr[:at], addr[at+1:], true
}

// Domain returns the domain of addr, what follows its last '@'; "" when
// there is no '@'.
func Domain(addr string) string {
	_, domain, _ := Split(addr)
	return domain
}
