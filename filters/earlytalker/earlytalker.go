// Package earlytalker is a connect-stage filter that judges what a client
// sent before moat's greeting, as Postfix's postscreen does with its
// pregreet test. An SMTP client must wait for the server's 220 greeting
// before it speaks (RFC 5321 §3.1, §4.3.1); spam robots that do not
// bother, and open proxies relaying an HTTP request, talk at once.
//
// The SMTP front (gateway, smtp.greet_pause) greets with "220-" and waits
// before the final "220 " line, as postscreen's postscreen_greet_banner
// does; what the client sends meanwhile is in Connection.Pregreet. This
// filter turns it into symbols and, per configuration, a demand.
package earlytalker

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// The symbol names the filter returns.
const (
	// SymPregreet: the client spoke before the greeting.
	SymPregreet = "PREGREET"
	// SymHTTP: what it sent is an HTTP request (an open proxy relaying
	// a web request, or a scanner).
	SymHTTP = "SMTP_HTTP_REQUEST"
)

// Config configures the filter. Start from DefaultConfig.
type Config struct {
	// PregreetScore is the score of PREGREET (TOML pregreet_score,
	// default 3.0).
	PregreetScore float64 `toml:"pregreet_score"`
	// HTTPScore is the score of SMTP_HTTP_REQUEST (TOML http_score,
	// default 5.0).
	HTTPScore float64 `toml:"http_score"`
	// Action is what a pregreet does beyond its score (TOML action,
	// default "reject"): "reject" refuses every transaction of the
	// connection with 550 5.7.1 (after the client has spoken, so that the
	// log has its envelope, as postscreen's "enforce"), "score" only
	// scores (postscreen's "ignore").
	Action string `toml:"action"`
}

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{PregreetScore: 3.0, HTTPScore: 5.0, Action: "reject"}
}

// Validate reports the first invalid field, named by its TOML key.
func (c Config) Validate() error {
	if err := filters.ValidateScores(c); err != nil {
		return err
	}
	switch c.Action {
	case "reject", "score":
	default:
		return fmt.Errorf("action: %q is not reject or score", c.Action)
	}
	return nil
}

// Filter is the early-talker check. It is safe for concurrent use.
type Filter struct{ cfg Config }

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.SymbolDeclarer = (*Filter)(nil)
)

// New returns the filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("earlytalker config: %w", err)
	}
	return &Filter{cfg: cfg}, nil
}

// Name implements filters.Filter.
func (f *Filter) Name() string { return "earlytalker" }

// Stage implements filters.Filter.
func (f *Filter) Stage() filters.Stage { return filters.StageConnect }

// Symbols implements filters.SymbolDeclarer.
func (f *Filter) Symbols() []string { return []string{SymPregreet, SymHTTP} }

// httpMethods start an HTTP/1 request line (RFC 9110 §9, and CONNECT of
// proxies).
var httpMethods = [][]byte{[]byte("GET "), []byte("POST "), []byte("HEAD "), []byte("PUT "),
	[]byte("CONNECT "), []byte("OPTIONS "), []byte("DELETE "), []byte("TRACE ")}

// Check implements filters.Filter.
func (f *Filter) Check(_ context.Context, in *filters.Input) (filters.Result, error) {
	if in == nil || in.Conn == nil || len(in.Conn.Pregreet) == 0 {
		return filters.Result{}, nil
	}
	early := in.Conn.Pregreet
	var r filters.Result
	reason := strconv.Itoa(len(early)) + " bytes before the greeting: " + quote(early, 40)
	r.Symbols = append(r.Symbols, filters.Symbol{Name: SymPregreet, Score: f.cfg.PregreetScore, Reason: reason})
	for _, m := range httpMethods {
		if bytes.HasPrefix(early, m) {
			r.Symbols = append(r.Symbols, filters.Symbol{Name: SymHTTP, Score: f.cfg.HTTPScore, Reason: "an HTTP request"})
			break
		}
	}
	if f.cfg.Action == "reject" {
		r.Demands = append(r.Demands, filters.Demand{Action: policies.ActionReject, Reason: reason})
	}
	return r, nil
}

// quote returns at most n bytes of b, Go-quoted, for a log line.
func quote(b []byte, n int) string {
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}
