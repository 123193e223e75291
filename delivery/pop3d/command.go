package pop3d

import (
	"errors"
	"strings"
)

// Line limits. RFC 2449 §4 caps a command line at 255 octets with its
// CRLF; some clients send longer AUTH lines and user names, so lines up to
// maxLine octets (without the line end) are accepted, and a longer one is
// answered -ERR and the connection closed: its tail cannot be told apart
// from the next command.
const (
	maxLine = 1000
	// maxKeyword is longer than any command this server knows (four
	// letters, RFC 1939 §3), to name an unknown one in the log.
	maxKeyword = 16
)

// Command keywords. RFC 1939 §3: keywords are case-insensitive.
const (
	cmdUSER = "USER"
	cmdPASS = "PASS"
	cmdAUTH = "AUTH"
	cmdSTLS = "STLS"
	cmdCAPA = "CAPA"
	cmdQUIT = "QUIT"
	cmdSTAT = "STAT"
	cmdLIST = "LIST"
	cmdRETR = "RETR"
	cmdDELE = "DELE"
	cmdNOOP = "NOOP"
	cmdRSET = "RSET"
	cmdTOP  = "TOP"
	cmdUIDL = "UIDL"
	cmdAPOP = "APOP"
)

var keywords = [...]string{cmdUSER, cmdPASS, cmdAUTH, cmdSTLS, cmdCAPA, cmdQUIT, cmdSTAT, cmdLIST,
	cmdRETR, cmdDELE, cmdNOOP, cmdRSET, cmdTOP, cmdUIDL, cmdAPOP}

// command is one parsed client line.
type command struct {
	// name is one of the cmd constants, or "" for an unknown keyword.
	name string
	// arg is what follows the keyword and its separating space, as sent
	// (a password may contain spaces, RFC 1939 §7 PASS).
	arg string
}

// Parse errors; their text is sent after -ERR.
var (
	errEmptyLine   = errors.New("Empty command")
	errControlChar = errors.New("Control character in command")
	errBadKeyword  = errors.New("Unknown command")
)

// parseCommand splits a line (without its CRLF) into keyword and argument.
// It never panics and allocates only the argument string.
func parseCommand(line []byte) (command, error) {
	if len(line) == 0 {
		return command{}, errEmptyLine
	}
	for _, b := range line {
		// RFC 1939 §3: arguments are printable ASCII; some clients send
		// UTF-8 passwords, so only NUL and the other C0 controls but TAB
		// are refused here.
		if b == 0 || (b < ' ' && b != '\t') || b == 0x7f {
			return command{}, errControlChar
		}
	}
	kw := line
	var rest []byte
	if i := indexByte(line, ' '); i >= 0 {
		kw, rest = line[:i], line[i+1:]
	}
	name := lookupKeyword(kw)
	if name == "" {
		return command{}, errBadKeyword
	}
	return command{name: name, arg: string(rest)}, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// lookupKeyword returns the canonical keyword matching kw in any case, or "".
func lookupKeyword(kw []byte) string {
	if len(kw) < 3 || len(kw) > 4 {
		return ""
	}
next:
	for _, k := range keywords {
		if len(k) != len(kw) {
			continue
		}
		for i := range kw {
			c := kw[i]
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			if c != k[i] {
				continue next
			}
		}
		return k
	}
	return ""
}

// nextArg returns the first space-separated word of s and the remainder.
// RFC 1939 §3 separates arguments by a single space; runs of spaces are
// accepted.
func nextArg(s string) (word, rest string) {
	s = strings.TrimLeft(s, " ")
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], strings.TrimLeft(s[i+1:], " ")
	}
	return s, ""
}

// parseNumber parses a non-negative decimal number of at most 9 digits, so
// that it fits any int. RFC 1939 §3 message numbers and TOP line counts
// are plain decimal: no sign, no spaces.
func parseNumber(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseCount parses the line count of TOP: like parseNumber, but a longer
// run of digits means "more lines than any message has".
func parseCount(s string) (int, bool) {
	if len(s) <= 9 {
		return parseNumber(s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	return maxTopLines, true
}

// maxTopLines stands for an unbounded TOP.
const maxTopLines = 1<<31 - 1
