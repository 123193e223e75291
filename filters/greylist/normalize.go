package greylist

import (
	"strings"
)

// NullSender is the Sender of a triplet whose envelope sender is the null
// reverse path <> (RFC 5321 §4.5.5: bounces and other notifications).
// It cannot collide with an address, which has an '@'.
const NullSender = "<>"

// maxAddress bounds the sender and the recipient a triplet holds, so that
// a hostile client cannot make rows of any size: RFC 5321 §4.5.3.1.3
// bounds a path to 256 octets, angle brackets included.
const maxAddress = 256

// NormalizeSender turns an envelope sender into the Sender of a triplet,
// as postgrey does (do_sender_substitutions), so that the addresses a
// mailing list or a bounce handler varies per message count as one
// sender and the retry of one message finds its first attempt:
//
//   - upper case is folded to lower case;
//   - a BATV tag (prvs=TAG=user@, draft-levine-smtp-batv) is dropped,
//     whichever side of the user the sender put it;
//   - a "+extension" of the user is dropped (VERP, RFC 5233 sub-addresses);
//   - every run of digits that is a word of its own in the user
//     ("bounce-123-456") becomes '#'.
//
// The null sender gives NullSender.
func NormalizeSender(from string) string {
	if from == "" || from == NullSender {
		return NullSender
	}
	from = strings.ToLower(from)
	at := strings.LastIndexByte(from, '@')
	if at < 0 {
		return bound(from)
	}
	user, domain := from[:at], from[at+1:]
	if rest, ok := strings.CutPrefix(user, "prvs="); ok {
		if tag, u, ok := strings.Cut(rest, "="); ok && !strings.Contains(u, "=") {
			// The standard order is prvs=TAG=user; some senders
			// write prvs=user=TAG.
			if isBATVTag(u) && !isBATVTag(tag) {
				u = tag
			}
			user = u
		}
	}
	if i := strings.IndexByte(user, '+'); i >= 0 {
		user = user[:i]
	}
	return bound(hashNumbers(user) + "@" + domain)
}

// isBATVTag reports whether s starts as a BATV tag-val does: ten
// characters of [0-9a-z] (a key number, a day, a hash).
func isBATVTag(s string) bool {
	if len(s) < 10 {
		return false
	}
	for i := range 10 {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// isWord reports whether c is a word character as Perl's \w has it in
// ASCII: postgrey's \b\d+\b.
func isWord(c byte) bool { return isAlnum(c) || c == '_' || 'A' <= c && c <= 'Z' }

func isAlnum(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' }

// hashNumbers replaces each run of digits that is a word of its own with
// '#'.
func hashNumbers(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < '0' || c > '9' || i > 0 && isWord(s[i-1]) {
			b.WriteByte(c)
			i++
			continue
		}
		j := i
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		if j < len(s) && isWord(s[j]) {
			b.WriteString(s[i:j])
		} else {
			b.WriteByte('#')
		}
		i = j
	}
	return b.String()
}

// normalizeRcpt lower-cases a recipient and bounds its length.
func normalizeRcpt(rcpt string) string {
	return bound(strings.ToLower(rcpt))
}

// bound cuts s to maxAddress bytes, and replaces what is not valid UTF-8,
// so that what is stored and listed is text.
func bound(s string) string {
	if len(s) > maxAddress {
		s = s[:maxAddress]
	}
	return strings.ToValidUTF8(s, "?")
}
