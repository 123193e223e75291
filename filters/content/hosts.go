package content

import (
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/idna"
)

// maxHostsPerURL bounds the addresses read from one mailto: link.
const maxHostsPerURL = 10

// LinkHosts returns the hosts a link points at, as a browser or a mail
// client would reach them: the host of an http, https or ftp URL, the
// domain of each address of a mailto URL. Hosts are raw: see ParseHost.
func LinkHosts(u string) []string {
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok {
		return nil
	}
	switch strings.ToLower(scheme) {
	case "http", "https", "ftp":
		// The WHATWG URL standard: a special scheme's slashes and
		// backslashes before the host are all skipped ("http:\\host",
		// "http:host"), and a backslash ends the host as '/' does.
		rest = strings.TrimLeft(rest, "/\\")
		if i := strings.IndexAny(rest, "/?#\\"); i >= 0 {
			rest = rest[:i]
		}
		if i := strings.LastIndexByte(rest, '@'); i >= 0 {
			rest = rest[i+1:] // userinfo, the classic "trusted.example@evil.example"
		}
		if strings.HasPrefix(rest, "[") {
			if i := strings.IndexByte(rest, ']'); i >= 0 {
				return []string{rest[:i+1]}
			}
			return nil
		}
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			rest = rest[:i]
		}
		return []string{rest}
	case "mailto":
		// RFC 6068 §2: addresses separated by commas, then headers.
		if i := strings.IndexByte(rest, '?'); i >= 0 {
			rest = rest[:i]
		}
		var out []string
		for _, addr := range strings.SplitN(rest, ",", maxHostsPerURL+1) {
			if i := strings.LastIndexByte(addr, '@'); i >= 0 && len(out) < maxHostsPerURL {
				out = append(out, strings.TrimRight(addr[i+1:], " >"))
			}
		}
		return out
	}
	return nil
}

// ParseHost turns a raw host into a name to look up: a lower-case domain name
// in A-labels without the trailing dot, or an IP address. It undoes
// percent-encoding, maps internationalised names to A-labels (RFC 5891
// §5, the lookup profile: full-width dots and upper case are mapped), and
// reads IPv4 addresses in every form a browser does ("3221225985",
// "0xc0.0.2.1", "0300.0.2.1", WHATWG URL §3.5). ok is false when h names
// nothing that could be looked up.
func ParseHost(h string) (name string, ip netip.Addr, ok bool) {
	if strings.IndexByte(h, '%') >= 0 {
		d, err := url.PathUnescape(h)
		if err != nil {
			return "", netip.Addr{}, false
		}
		h = d
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		if err != nil || a.Zone() != "" {
			return "", netip.Addr{}, false
		}
		return "", a.Unmap(), true
	}
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			a, err := idna.Lookup.ToASCII(h)
			if err != nil {
				return "", netip.Addr{}, false
			}
			h = a
			break
		}
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if endsInNumber(h) {
		a, ok := parseIPv4(h)
		return "", a, ok
	}
	if len(h) > 253 || !strings.Contains(h, ".") || !IsHostName(h) {
		return "", netip.Addr{}, false
	}
	return h, netip.Addr{}, true
}

// endsInNumber reports whether the last label of h (after one trailing
// empty label) is a number, which makes a browser read h as an IPv4
// address (WHATWG URL, "ends in a number checker").
func endsInNumber(h string) bool {
	parts := strings.Split(h, ".")
	if parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	last := parts[len(parts)-1]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	if strings.HasPrefix(last, "0x") || strings.HasPrefix(last, "0X") {
		return strings.Trim(last[2:], "0123456789abcdefABCDEF") == ""
	}
	return false
}

// parseIPv4 reads h as the WHATWG URL standard's IPv4 parser does: one to
// four dot-separated numbers, each decimal, octal (a leading 0) or
// hexadecimal (0x); the last fills the bytes the others leave.
func parseIPv4(h string) (netip.Addr, bool) {
	parts := strings.Split(h, ".")
	if parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var nums [4]uint64
	for i, p := range parts {
		n, ok := parseIPv4Number(p)
		if !ok {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	last := len(parts) - 1
	for _, n := range nums[:last] {
		if n > 255 {
			return netip.Addr{}, false
		}
	}
	if nums[last] >= 1<<(8*(5-len(parts))) {
		return netip.Addr{}, false
	}
	v := nums[last]
	for i, n := range nums[:last] {
		v += n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// parseIPv4Number reads one part of an IPv4 host. Values beyond 2^32 are
// capped there: they are out of range whatever their position.
func parseIPv4Number(p string) (uint64, bool) {
	if p == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
	case len(p) >= 2 && p[0] == '0':
		base, p = 8, p[1:]
	}
	var v uint64
	for i := 0; i < len(p); i++ {
		var d uint64
		switch c := p[i]; {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = min(v*base+d, 1<<32)
	}
	return v, true
}

// IsHostName reports whether s is a domain name of lower-case letters,
// digits, '-' and '_' (seen in host names, if not in registrable ones) in
// labels of 1 to 63 bytes (RFC 1035 §2.3.4), without a trailing dot: a
// zone, or an item to ask a domain list about.
func IsHostName(s string) bool {
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
