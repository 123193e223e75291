// Package policies holds moat's typed per-domain and per-recipient policy:
// score thresholds, the subject prefix added on tag, sender allow and block
// lists, and which filters are switched off. Nothing here runs a check: the
// rules package reads a resolved [Policy] to turn a score into an [Action].
//
// A [Set] is built once from [Config] at load time. Every policy it can hand
// out is resolved then (recipient on top of domain on top of default) and
// shared by pointer, so that callers may compare policies with ==.
package policies

import "fmt"

// Action is what happens to a message (or an SMTP command at an early
// stage). The constants are ordered by increasing severity, so the most
// severe of several actions is their maximum.
type Action int

// The actions, least severe first.
const (
	// ActionAccept delivers the message unchanged.
	ActionAccept Action = iota
	// ActionTag delivers the message with the policy's subject prefix and
	// the spam headers added.
	ActionTag
	// ActionQuarantine accepts the message into the quarantine instead of
	// the recipient's mailbox.
	ActionQuarantine
	// ActionTempfail refuses with a 4xx reply so that the client retries
	// later (RFC 5321 §4.2.1: transient negative completion).
	ActionTempfail
	// ActionReject refuses with a 5xx reply (RFC 5321 §4.2.1: permanent
	// negative completion).
	ActionReject
	numActions
)

var actionNames = [...]string{"accept", "tag", "quarantine", "tempfail", "reject"}

// String returns the name used in configuration, logs and metrics.
func (a Action) String() string {
	if a < 0 || a >= numActions {
		return fmt.Sprintf("action(%d)", int(a))
	}
	return actionNames[a]
}

// ParseAction turns a configuration name ("accept", "tag", "quarantine",
// "tempfail", "reject") into an Action. Names are case-sensitive, as every
// other configuration keyword.
func ParseAction(name string) (Action, error) {
	for i, n := range actionNames {
		if n == name {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want accept, tag, quarantine, tempfail or reject)", name)
}

// MarshalText encodes the action as its name, for logs in JSON.
func (a Action) MarshalText() ([]byte, error) {
	if a < 0 || a >= numActions {
		return nil, fmt.Errorf("invalid action %d", int(a))
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText decodes an action name, so that an Action can sit directly
// in a configuration struct.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}
