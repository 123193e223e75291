// Package filters defines the contract every check in moat implements and the
// facts a check sees: the connection, the envelope and the parsed message.
//
// A filter never speaks SMTP. It returns a [Result]: symbols (a name, a
// score and a short reason), which the rules package sums and turns into a
// verdict; authentication results, which become the Authentication-Results
// field and which later checks read (DMARC reads SPF and DKIM); and named
// facts, which later checks and rule expressions read. Packages under
// filters/ are leaves: they never import gateway, rules or delivery.
package filters

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"time"
)

// Stage is the point of the SMTP dialogue at which a filter runs.
type Stage int

// The stages in dialogue order.
const (
	StageConnect Stage = iota // after the TCP (and implicit TLS) handshake
	StageHelo                 // after HELO/EHLO
	StageMail                 // after MAIL FROM
	StageRcpt                 // after each RCPT TO that names a local recipient
	StageData                 // after the message body has been received
	numStages
)

// Stages lists every stage in dialogue order.
var Stages = []Stage{StageConnect, StageHelo, StageMail, StageRcpt, StageData}

var stageNames = [...]string{"connect", "helo", "mail", "rcpt", "data"}

// String returns the stage name used in configuration, logs and metrics.
func (s Stage) String() string {
	if s < 0 || s >= numStages {
		return fmt.Sprintf("stage(%d)", int(s))
	}
	return stageNames[s]
}

// ParseStage turns a configuration name ("connect", "data", ...) into a Stage.
func ParseStage(name string) (Stage, error) {
	for i, n := range stageNames {
		if n == name {
			return Stage(i), nil
		}
	}
	return 0, fmt.Errorf("unknown stage %q (want connect, helo, mail, rcpt or data)", name)
}

// Symbol is one finding of a filter. Scores add up: positive is spammy,
// negative is hammy. Name is an upper-case constant such as "GTUBE" or
// "MISSING_DATE"; Reason is a short human text for logs and the quarantine.
type Symbol struct {
	Name   string  `json:"name"`
	Score  float64 `json:"score"`
	Reason string  `json:"reason,omitempty"`
}

// Filter is a check that runs at one stage of the dialogue.
//
// Check must honour ctx (the pipeline gives every filter a deadline) and must
// be safe for concurrent use: one Filter value serves every session. An error
// means the check could not be made (a DNS timeout, a daemon down); the
// pipeline turns it into a <NAME>_TEMPFAIL symbol and never into a permanent
// rejection, and drops whatever Result came with the error.
type Filter interface {
	// Name is a short lower-case identifier used in config, logs and metrics.
	Name() string
	// Stage is when the filter runs.
	Stage() Stage
	// Check inspects the facts known so far and returns its findings.
	Check(ctx context.Context, in *Input) (Result, error)
}

// Sequenced is implemented by a filter that must run after other filters of
// its own stage, to read what they found in [Input.Prior] (DMARC reads the
// results of SPF and DKIM). The pipeline runs a stage's filters
// concurrently in waves: a filter starts once every filter it names has
// finished. A name that is not in the pipeline (disabled), that the policy
// does not run, or that belongs to an earlier stage (whose results are in
// Prior anyway) is ignored; a name of a later stage, and a cycle, are
// configuration errors.
type Sequenced interface {
	// After names the filters this one runs after.
	After() []string
}

// SymbolDeclarer is implemented by filters that declare every symbol name
// they can return. The pipeline uses it to refuse a rule named like a
// filter's symbol (the two would be confused), and metrics and docs can
// list the names. Every filter should implement it.
type SymbolDeclarer interface {
	Symbols() []string
}

// Input is everything a filter may look at. Fields that belong to a later
// stage are zero: Msg is nil before StageData, Rcpt is empty outside
// StageRcpt.
type Input struct {
	Conn *Connection
	Env  *Envelope
	// Rcpt is the recipient being checked at StageRcpt.
	Rcpt string
	// Msg is the received message at StageData.
	Msg *Message
	// Prior is what the checks that ran before this one found: those of
	// the earlier stages of the connection and the transaction (for the
	// rcpt stage, of the recipients accepted before), and those of this
	// stage's earlier waves (see [Sequenced]). Read only: it is shared.
	Prior *Result
}

// Connection holds what is known about the SMTP client.
type Connection struct {
	// ID identifies the connection in logs.
	ID string
	// Listener is the configured name of the listener that accepted it
	// ("mx", "mxs", "submission").
	Listener string
	// RemoteIP is the client address; LocalIP is ours.
	RemoteIP netip.Addr
	LocalIP  netip.Addr
	// ReverseName is the client's verified reverse DNS name, or empty.
	ReverseName string
	// Helo is the HELO/EHLO argument, empty before StageHelo.
	Helo string
	// TLS is the negotiated TLS state, nil on a plaintext connection.
	TLS *tls.ConnectionState
	// AuthUser is the authenticated user on submission, or empty.
	AuthUser string
	// Start is when the connection was accepted.
	Start time.Time
	// Pregreet is what the client sent before moat's greeting (at most
	// 512 bytes) while the SMTP front paused it (smtp.greet_pause); empty
	// when the client waited, as RFC 5321 §3.1 asks, or when there was no
	// pause.
	Pregreet []byte
}

// Envelope is the SMTP envelope of the current transaction.
type Envelope struct {
	// From is the reverse path without angle brackets; empty for the null
	// sender <> (bounces).
	From string
	// Rcpts are the accepted recipients so far.
	Rcpts []string
	// SMTPUTF8 is true when MAIL FROM carried the SMTPUTF8 parameter
	// (RFC 6531 §3.4).
	SMTPUTF8 bool
	// Body8Bit is true when MAIL FROM declared BODY=8BITMIME (RFC 6152).
	Body8Bit bool
	// DeclaredSize is the SIZE= parameter of MAIL FROM, or 0.
	DeclaredSize int64
}
