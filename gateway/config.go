// Package gateway is moat's SMTP front: listeners, TLS, the go-smtp session,
// recipient checks (no open relay), and the mapping of a rules.Verdict to an
// SMTP reply or a delivery route. It does not know what any single filter
// does.
package gateway

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// Config is the SMTP front configuration, under [smtp].
type Config struct {
	// Hostname is the name in the greeting, in EHLO replies and in the
	// Received fields (default: the host name of the machine).
	Hostname string `toml:"hostname"`
	// MaxMessageBytes is the SIZE limit (RFC 1870), default 25 MiB.
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// MaxRecipients is the largest number of RCPT per transaction,
	// default 100 (RFC 5321 §4.5.3.1.8 asks for at least 100).
	MaxRecipients int `toml:"max_recipients"`
	// MaxLineLength is the longest command or text line, CRLF included
	// (default 2000, twice RFC 5321 §4.5.3.1.6's 1000 for lenience).
	MaxLineLength int `toml:"max_line_length"`
	// CommandTimeout bounds the wait for each command (default 5m,
	// RFC 5321 §4.5.3.2.7 server timeout).
	CommandTimeout time.Duration `toml:"command_timeout"`
	// GreetPause is how long the greeting waits between its first line
	// ("220-host") and its last ("220 host ..."), as postscreen's
	// postscreen_greet_wait with its multi-line banner (default 0: no
	// pause). A client that speaks meanwhile has not waited for the
	// greeting (RFC 5321 §3.1); what it said is in
	// filters.Connection.Pregreet for the earlytalker filter. Not on the
	// implicit-TLS listener, where the client speaks first.
	GreetPause time.Duration `toml:"greet_pause"`
	// DataTimeout bounds the whole DATA transfer (default 10m).
	DataTimeout time.Duration `toml:"data_timeout"`
	// MaxConnections bounds concurrent SMTP connections (default 1000);
	// MaxConnectionsPerIP bounds them per client address (default 50,
	// Postfix's smtpd_client_connection_count_limit: a sending Postfix opens
	// up to 20 at once, and reconnects before the server has closed the last).
	MaxConnections      int `toml:"max_connections"`
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// RecipientDelimiter separates a local part from its extension
	// ("user+tag@example.com" is delivered to user@example.com); default
	// "+", "" switches sub-addressing off.
	RecipientDelimiter *string `toml:"recipient_delimiter"`
	// LocalDomains are the domains this gateway receives mail for. Mail
	// to any other domain is refused: moat is not an open relay.
	LocalDomains []string `toml:"local_domains"`
	// AuthservID names moat in the Authentication-Results fields it
	// writes (RFC 8601 §2.5; default: Hostname). Fields under this id that
	// arrive with a message are removed, so that a sender cannot forge
	// moat's results; every node of one organisation should share it.
	AuthservID string `toml:"authserv_id"`
	// StripSpamHeaders removes X-Spam-* fields that arrive with a message
	// so that a sender cannot forge moat's verdict (default true).
	StripSpamHeaders *bool `toml:"strip_spam_headers"`
	// RelayDomains are the domains moat receives mail for and sends on to
	// the organisation's own servers (Deps.Outbound) instead of into its
	// store. Their recipients are checked at RCPT by Deps.Verifier, so
	// that moat never accepts mail it would have to bounce. A domain is
	// local or relay, not both.
	RelayDomains []string `toml:"relay_domains"`
	// QuarantineOwner is the user (an admin of the store) whose
	// Quarantine folder holds the quarantined mail of recipients without
	// a mailbox here: relay-domain recipients, and a submitted message's
	// remote ones. Release sends such mail on. Required with
	// RelayDomains.
	QuarantineOwner string `toml:"quarantine_owner"`
	// Submission configures the submission listeners (587, 465).
	Submission SubmissionConfig `toml:"submission"`
}

// Defaults for Config.
const (
	DefaultMaxMessageBytes = 25 << 20
	DefaultMaxRecipients   = 100
	DefaultMaxLineLength   = 2000
)

// Validate checks the configuration and fills defaults. Errors name the key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
		if c.Hostname == "" {
			c.Hostname = "localhost"
		}
	}
	if strings.ContainsAny(c.Hostname, " \t\r\n") {
		bad("hostname", "%q contains white space", c.Hostname)
	}
	if c.AuthservID == "" {
		c.AuthservID = c.Hostname
	}
	if authservID(c.AuthservID) != c.AuthservID {
		bad("authserv_id", "%q is not a single token (RFC 8601 §2.2: no white space, comments or ';')", c.AuthservID)
	}
	setDefault(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	setDefault(&c.MaxRecipients, DefaultMaxRecipients)
	setDefault(&c.MaxLineLength, DefaultMaxLineLength)
	setDefault(&c.CommandTimeout, 5*time.Minute)
	setDefault(&c.DataTimeout, 10*time.Minute)
	if c.GreetPause < 0 || c.GreetPause > time.Minute {
		bad("greet_pause", "%v is not between 0s and 1m", c.GreetPause)
	}
	setDefault(&c.MaxConnections, 1000)
	setDefault(&c.MaxConnectionsPerIP, 50)
	if c.RecipientDelimiter == nil {
		plus := "+"
		c.RecipientDelimiter = &plus
	}
	if c.StripSpamHeaders == nil {
		yes := true
		c.StripSpamHeaders = &yes
	}
	if c.MaxMessageBytes < 1024 {
		bad("max_message_bytes", "%d is below 1024", c.MaxMessageBytes)
	}
	if c.MaxRecipients < 1 {
		bad("max_recipients", "%d is below 1", c.MaxRecipients)
	}
	if c.MaxLineLength < 1000 {
		bad("max_line_length", "%d is below 1000 (RFC 5321 §4.5.3.1.6)", c.MaxLineLength)
	}
	if c.CommandTimeout < time.Second {
		bad("command_timeout", "%v is below 1s", c.CommandTimeout)
	}
	if c.DataTimeout < time.Second {
		bad("data_timeout", "%v is below 1s", c.DataTimeout)
	}
	if c.MaxConnections < 1 {
		bad("max_connections", "%d is below 1", c.MaxConnections)
	}
	if c.MaxConnectionsPerIP < 1 {
		bad("max_connections_per_ip", "%d is below 1", c.MaxConnectionsPerIP)
	}
	if len(*c.RecipientDelimiter) > 1 {
		bad("recipient_delimiter", "%q is longer than one character", *c.RecipientDelimiter)
	}
	if len(c.LocalDomains) == 0 {
		bad("local_domains", "must list at least one domain")
	}
	for i, d := range c.LocalDomains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if !validDomain(d) {
			bad(fmt.Sprintf("local_domains[%d]", i), "%q is not a domain name", c.LocalDomains[i])
		}
		c.LocalDomains[i] = d
	}
	for i, d := range c.RelayDomains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		switch {
		case !validDomain(d):
			bad(fmt.Sprintf("relay_domains[%d]", i), "%q is not a domain name", c.RelayDomains[i])
		case slices.Contains(c.LocalDomains, d):
			bad(fmt.Sprintf("relay_domains[%d]", i), "%q is in local_domains too: a domain is delivered here or sent on, not both", d)
		}
		c.RelayDomains[i] = d
	}
	if c.QuarantineOwner != "" {
		c.QuarantineOwner = strings.ToLower(strings.TrimSpace(c.QuarantineOwner))
		at := strings.LastIndexByte(c.QuarantineOwner, '@')
		if at < 0 || !slices.Contains(c.LocalDomains, c.QuarantineOwner[at+1:]) {
			bad("quarantine_owner", "%q is not an address in a local domain", c.QuarantineOwner)
		}
	} else if len(c.RelayDomains) > 0 {
		bad("quarantine_owner", "must name an admin user when relay_domains are set: it holds their quarantined mail")
	}
	for _, err := range flattenErr(c.Submission.Validate()) {
		errs = append(errs, fmt.Errorf("submission.%w", err))
	}
	return errors.Join(errs...)
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// validDomain accepts LDH labels (RFC 1035 §2.3.1) and A-labels.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// flattenErr returns the errors an errors.Join holds, each on its own.
func flattenErr(err error) []error {
	if err == nil {
		return nil
	}
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range multi.Unwrap() {
			out = append(out, flattenErr(e)...)
		}
		return out
	}
	return []error{err}
}
