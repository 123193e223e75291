package ratelimit

import (
	"errors"
	"fmt"
	"time"

	"github.com/moatmail/moat/filters/clientnet"
)

// Rate is a limit: at most Limit at once, and Limit per Per after that
// (a token bucket of Limit tokens refilled at Limit per Per, as rspamd's
// ratelimit buckets "burst / period"). A Limit of 0 turns the limit off.
// In TOML: { limit = 60, per = "1m" }; a table that names one key keeps
// the default of the other ({ limit = 0 } turns a limit off).
type Rate struct {
	Limit int           `toml:"limit"`
	Per   time.Duration `toml:"per"`
}

// String formats r as "60 per 1m0s".
func (r Rate) String() string { return fmt.Sprintf("%d per %v", r.Limit, r.Per) }

// perNano is the refill in tokens per nanosecond.
func (r Rate) perNano() float64 { return float64(r.Limit) / float64(r.Per) }

// timeToFill is how long a bucket holding tokens takes to be full, in
// nanoseconds.
func (r Rate) timeToFill(tokens float64) int64 {
	missing := float64(r.Limit) - tokens
	if missing <= 0 {
		return 0
	}
	return int64(missing / r.perNano())
}

// Config configures the limits. Start from DefaultConfig and override
// what the configuration file sets: a zero field is a value, not a
// request for the default (a Rate with limit 0 is off).
//
// The per-network and per-sender limits apply to clients that are not
// authenticated (the MX traffic), except those in ExemptNetworks; an
// authenticated user (submission) is counted by the per-user limits
// instead, wherever it connects from. Postfix's anvil limits
// (smtpd_client_connection_rate_limit, smtpd_client_message_rate_limit,
// smtpd_client_recipient_rate_limit) are the precedent for the
// per-client ones; they are off by default there, and the defaults here
// are set well above what one mail server sends to one organisation, to
// stop floods, not mail. The per-user defaults are lower: a person, not a
// server, sends under them.
type Config struct {
	// IPv4Prefix and IPv6Prefix group client addresses into the network
	// a per-network limit counts (TOML ipv4_prefix, default 32: one host,
	// as Postfix's anvil counts, since a /24 of a hosting provider holds
	// unrelated customers; ipv6_prefix, default 64: an end site picks
	// any address in its /64).
	IPv4Prefix int `toml:"ipv4_prefix"`
	IPv6Prefix int `toml:"ipv6_prefix"`
	// ExemptNetworks are never limited by the per-network and per-sender
	// limits (TOML exempt_networks, default loopback: local tools and
	// monitoring); the per-user limits apply there too.
	ExemptNetworks []string `toml:"exempt_networks"`
	// MaxKeys bounds the buckets the embedded store holds (TOML
	// max_keys, default 100000, about 10 MB); when it is full, idle
	// buckets go first.
	MaxKeys int `toml:"max_keys"`

	// Connections: new connections per client network (TOML
	// connections, default 60 per 1m), at the connect stage.
	Connections Rate `toml:"connections"`
	// MessagesPerNetwork: MAIL FROM commands per client network (TOML
	// messages_per_network, default 1000 per 1h), at the mail stage
	// (Postfix's smtpd_client_message_rate_limit counts the same).
	MessagesPerNetwork Rate `toml:"messages_per_network"`
	// MessagesPerSender: MAIL FROM commands per envelope sender (TOML
	// messages_per_sender, default 500 per 1h). What counts as one sender
	// is in the package documentation.
	MessagesPerSender Rate `toml:"messages_per_sender"`
	// RecipientsPerNetwork: recipients per client network (TOML
	// recipients_per_network, default 5000 per 1h), at the rcpt stage.
	RecipientsPerNetwork Rate `toml:"recipients_per_network"`
	// RecipientsPerSender: recipients per envelope sender (TOML
	// recipients_per_sender, default 2500 per 1h).
	RecipientsPerSender Rate `toml:"recipients_per_sender"`
	// BadRecipients: recipients refused as unknown (550 5.1.1) per client
	// network (TOML bad_recipients, default 20 per 1h, as Postfix's
	// smtpd_hard_error_limit of 20 per session): a dictionary attack on
	// user names. Once a network has used them up, its recipients are
	// deferred, known users and unknown alike.
	BadRecipients Rate `toml:"bad_recipients"`

	// MessagesPerUser: MAIL FROM commands per authenticated user (TOML
	// messages_per_user, default 100 per 1h), at the mail stage of a
	// submission session, as rspamd's ratelimit "user" bucket and
	// Postfix's smtpd_client_message_rate_limit on a submission service:
	// a compromised account must not be able to blast out mail. It
	// applies whatever the client's address (ExemptNetworks does not
	// waive it: webmail on the same host connects from loopback).
	MessagesPerUser Rate `toml:"messages_per_user"`
	// RecipientsPerUser: recipients per authenticated user (TOML
	// recipients_per_user, default 1000 per 1h), at the rcpt stage of a
	// submission session: one message to 500 recipients is the
	// spammer's move, and it is stopped at RCPT, before DATA.
	RecipientsPerUser Rate `toml:"recipients_per_user"`
}

// DefaultMaxKeys is the default of Config.MaxKeys.
const DefaultMaxKeys = 100_000

// DefaultConfig returns the configuration used when the file sets nothing.
func DefaultConfig() Config {
	return Config{
		IPv4Prefix:           32,
		IPv6Prefix:           64,
		ExemptNetworks:       append([]string(nil), clientnet.Loopback...),
		MaxKeys:              DefaultMaxKeys,
		Connections:          Rate{60, time.Minute},
		MessagesPerNetwork:   Rate{1000, time.Hour},
		MessagesPerSender:    Rate{500, time.Hour},
		RecipientsPerNetwork: Rate{5000, time.Hour},
		RecipientsPerSender:  Rate{2500, time.Hour},
		BadRecipients:        Rate{20, time.Hour},
		MessagesPerUser:      Rate{100, time.Hour},
		RecipientsPerUser:    Rate{1000, time.Hour},
	}
}

// Validate reports every invalid setting, named by its TOML key.
func (c Config) Validate() error {
	var errs []error
	if err := clientnet.CheckPrefixLengths("ipv4_prefix", c.IPv4Prefix, "ipv6_prefix", c.IPv6Prefix); err != nil {
		errs = append(errs, err)
	}
	if _, err := clientnet.ParseList("exempt_networks", c.ExemptNetworks); err != nil {
		errs = append(errs, err)
	}
	if c.MaxKeys < numShards*16 {
		errs = append(errs, fmt.Errorf("max_keys: %d is below %d", c.MaxKeys, numShards*16))
	}
	for _, l := range c.limits() {
		switch r := l.rate; {
		case r.Limit < 0:
			errs = append(errs, fmt.Errorf("%s.limit: %d is negative", l.name, r.Limit))
		case r.Limit > 0 && r.Per < time.Second:
			errs = append(errs, fmt.Errorf("%s.per: %v is below 1s", l.name, r.Per))
		}
	}
	return errors.Join(errs...)
}

// limit is one of the configured limits.
type limit struct {
	name string // the TOML key, also the Observer's label
	tag  string // the prefix of its bucket keys
	sym  string
	rate Rate
}

// The limits, by their place in Config.limits.
const (
	limConnections = iota
	limMessagesPerNetwork
	limMessagesPerSender
	limRecipientsPerNetwork
	limRecipientsPerSender
	limBadRecipients
	limMessagesPerUser
	limRecipientsPerUser
	numLimits
)

func (c Config) limits() [numLimits]limit {
	return [numLimits]limit{
		{"connections", "conn", SymConn, c.Connections},
		{"messages_per_network", "msg-net", SymMsgNetwork, c.MessagesPerNetwork},
		{"messages_per_sender", "msg-from", SymMsgSender, c.MessagesPerSender},
		{"recipients_per_network", "rcpt-net", SymRcptNetwork, c.RecipientsPerNetwork},
		{"recipients_per_sender", "rcpt-from", SymRcptSender, c.RecipientsPerSender},
		{"bad_recipients", "bad-rcpt", SymBadRcpt, c.BadRecipients},
		{"messages_per_user", "msg-user", SymMsgUser, c.MessagesPerUser},
		{"recipients_per_user", "rcpt-user", SymRcptUser, c.RecipientsPerUser},
	}
}
