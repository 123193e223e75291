package policies

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Built-in defaults for the default policy.
const (
	DefaultTagScore        = 5.0
	DefaultQuarantineScore = 10.0
	DefaultRejectScore     = 20.0
)

// Config is the policy configuration as it sits under [policies] in the
// configuration file:
//
//	[policies.default]
//	tag = 5.0                     # default 5
//	quarantine = 10.0             # default 10
//	reject = "off"                # default 20; "off" switches a threshold off
//	subject_prefix = "[SPAM]"     # default "" (no prefix)
//	allow_senders = ["@partner.example"]
//	block_senders = [".spammer.example"]
//	disable_filters = ["headers"]
//
//	[policies.domains."example.com"]
//	quarantine = 6.0
//
//	[policies.recipients."ceo@example.com"]
//	reject = 12.0
//
// Inheritance: a domain policy starts from the default policy and overrides
// only the keys it sets; a recipient policy starts from the policy of its
// domain (or the default policy when its domain has none) and overrides
// only the keys it sets. A list (allow_senders, block_senders,
// disable_filters), when set, replaces the inherited list as a whole; it is
// not appended to it. Set a list to [] to clear an inherited one.
//
// Domain names and recipient addresses are normalised to lower case (ASCII
// only; internationalised domains must be written as xn-- A-labels). See
// [SenderList] for sender patterns.
type Config struct {
	// Default is the policy of every recipient that no domain or recipient
	// policy covers, and the base of those policies.
	Default PolicyConfig `toml:"default"`
	// Domains maps a recipient domain to its policy.
	Domains map[string]PolicyConfig `toml:"domains"`
	// Recipients maps a recipient address to its policy.
	Recipients map[string]PolicyConfig `toml:"recipients"`
	// Submission is the policy of mail that authenticated users submit
	// (ports 587 and 465), whatever its recipients. It starts from the
	// default policy with tag and quarantine off and no subject prefix
	// (a user's own mail is not marked as spam to its readers; a rule's
	// forced action, such as the antivirus's reject, still acts), and
	// overrides what it sets. Which checks run on submission at all is
	// smtp.submission.filters; its disable_filters narrows that further.
	Submission PolicyConfig `toml:"submission"`
}

// PolicyConfig is one [policies.*] table. Every field is optional: nil
// means "inherit".
type PolicyConfig struct {
	// Tag is the score from which a message is tagged (subject prefix and
	// spam headers) at the data stage.
	Tag *Threshold `toml:"tag"`
	// Quarantine is the score from which a message is quarantined.
	Quarantine *Threshold `toml:"quarantine"`
	// Reject is the score from which a message is rejected with 5xx.
	Reject *Threshold `toml:"reject"`
	// SubjectPrefix is prepended to the Subject of a tagged message; ""
	// adds nothing.
	SubjectPrefix *string `toml:"subject_prefix"`
	// AllowSenders are sender patterns whose mail is never tagged,
	// quarantined or rejected on score (rule-forced actions still apply).
	AllowSenders []string `toml:"allow_senders"`
	// BlockSenders are sender patterns whose mail is rejected.
	BlockSenders []string `toml:"block_senders"`
	// DisableFilters names filters that do not run for this policy.
	DisableFilters []string `toml:"disable_filters"`
	// IgnoreDemands names filters whose demanded actions this policy
	// ignores: they still run and score, but what they ask for (DMARC's
	// reject for a p=reject domain) does not act.
	IgnoreDemands []string `toml:"ignore_demands"`
}

// Threshold is a score threshold in configuration: a number, or the string
// "off" to switch the threshold off. A threshold that is off is held as
// +Inf, which no score reaches; TOML's own `inf` is therefore accepted as a
// synonym. NaN and -inf are refused by Validate. Negative numbers are
// ordinary thresholds (scores can be negative), never a switch.
type Threshold float64

// ThresholdAt returns a threshold at v, for configurations built in Go.
func ThresholdAt(v float64) *Threshold {
	t := Threshold(v)
	return &t
}

// ThresholdOff returns a threshold that is switched off.
func ThresholdOff() *Threshold { return ThresholdAt(math.Inf(1)) }

// Off reports whether the threshold is switched off.
func (t Threshold) Off() bool { return math.IsInf(float64(t), 1) }

// String returns "off" or the number.
func (t Threshold) String() string { return formatScore(float64(t)) }

// UnmarshalTOML implements toml.Unmarshaler: it accepts an integer, a
// float, or the string "off".
func (t *Threshold) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case float64:
		*t = Threshold(x)
	case int64:
		*t = Threshold(x)
	case string:
		if x != "off" {
			return fmt.Errorf("threshold %q: want a number or \"off\"", x)
		}
		*t = Threshold(math.Inf(1))
	default:
		return fmt.Errorf("threshold of type %T: want a number or \"off\"", v)
	}
	return nil
}

// UnmarshalText accepts a number or "off", for decoders that hand over
// text (environment variables, flags).
func (t *Threshold) UnmarshalText(b []byte) error {
	if string(b) == "off" {
		*t = Threshold(math.Inf(1))
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("threshold %q: want a number or \"off\"", b)
	}
	*t = Threshold(f)
	return nil
}

// Validate checks every policy as New would build it. Errors name the exact
// key, e.g. `policies.domains."example.com".quarantine: 3 is below tag (5)`;
// several errors are joined.
func (c Config) Validate() error {
	_, err := build(c)
	return err
}

// formatScore prints a score or threshold for messages: the shortest exact
// form, "off" for +Inf.
func formatScore(v float64) string {
	if math.IsInf(v, 1) {
		return "off"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var thresholdKeys = [3]string{"tag", "quarantine", "reject"}

// applyThresholds sets the thresholds pc sets on p and checks their order.
// Thresholds must rise tag <= quarantine <= reject among those switched on:
// otherwise a more severe action would silently shadow a lighter one. The
// error blames a key set at this level, never an inherited one.
func applyThresholds(key string, pc PolicyConfig, p *Policy) []error {
	var errs []error
	in := [3]*Threshold{pc.Tag, pc.Quarantine, pc.Reject}
	vals := [3]*float64{&p.TagScore, &p.QuarantineScore, &p.RejectScore}
	for i, t := range in {
		if t == nil {
			continue
		}
		v := float64(*t)
		if math.IsNaN(v) || math.IsInf(v, -1) {
			errs = append(errs, fmt.Errorf("%s.%s: %v is not a threshold (want a number or \"off\")", key, thresholdKeys[i], v))
			continue
		}
		*vals[i] = v
	}
	if len(errs) > 0 {
		return errs
	}
	for hi := 1; hi < 3; hi++ {
		for lo := 0; lo < hi; lo++ {
			l, h := *vals[lo], *vals[hi]
			if math.IsInf(l, 1) || math.IsInf(h, 1) || l <= h {
				continue
			}
			switch {
			case in[hi] != nil:
				return append(errs, fmt.Errorf("%s.%s: %s is below %s (%s)",
					key, thresholdKeys[hi], formatScore(h), thresholdKeys[lo], formatScore(l)))
			case in[lo] != nil:
				return append(errs, fmt.Errorf("%s.%s: %s is above %s (%s)",
					key, thresholdKeys[lo], formatScore(l), thresholdKeys[hi], formatScore(h)))
			}
			// Both inherited: the parent level reported it already.
		}
	}
	return errs
}

// checkFilterName checks a filter name in disable_filters: the short
// lower-case identifier a filter's Name returns.
func checkFilterName(n string) error {
	if n == "" {
		return errors.New("empty filter name")
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || ((c == '-' || c == '_') && i > 0)
		if !ok {
			return errors.New("want a lower-case filter name (letters, digits, '-', '_')")
		}
	}
	return nil
}
