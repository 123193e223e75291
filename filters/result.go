package filters

import (
	"slices"

	"github.com/moatmail/moat/policies"
)

// Result is what one check found, and also what a whole stage, connection
// or transaction found so far (results add up with [Result.Add]).
//
// It is typed in the spirit of maddy's CheckResult: symbols score,
// authentication results and facts do not score by themselves; a check
// that wants them to count also returns a symbol.
type Result struct {
	// Symbols are the scored findings.
	Symbols []Symbol
	// Auth are authentication results (RFC 8601): what moat writes into the
	// Authentication-Results field of the stored message, and what later
	// checks read (DMARC, RFC 7489 §4.2, needs SPF's and DKIM's outcome).
	Auth []AuthResult
	// Facts are named findings for later checks and rule expressions (the
	// client's verified reverse name, a GeoIP country, the DKIM signing
	// domains). A name may appear more than once (one fact per signing
	// domain).
	Facts []Fact
	// Demands are actions a check asks of the verdict whatever the score:
	// a greylisted triplet asks for tempfail, a client over a DNSBL
	// threshold or mail failing DMARC for a p=reject domain for reject.
	// A demand acts as a rule's forced action does (rules.Pipeline.Decide):
	// tempfail and reject at any stage, tag and quarantine at the data
	// stage; an allow list never waives it.
	Demands []Demand
}

// Demand is an action a check asks for. A stranger never learns the
// reason: the SMTP reply is the generic one of the action, unless Text
// applies.
type Demand struct {
	// Action is the least action the check asks for.
	Action policies.Action `json:"action"`
	// Check names the check that asks (the pipeline sets it).
	Check string `json:"check,omitempty"`
	// Reason says why, for the log and the quarantine.
	Reason string `json:"reason,omitempty"`
	// Text, when set, is the text of the SMTP reply to an authenticated
	// client (Connection.AuthUser, submission) when this demand decides:
	// a known user may be told why ("Message rate limit reached for
	// your account"), so that they wait rather than send again; the
	// reply code stays the generic one of the action. A client that is
	// not authenticated always gets the generic text. It must be one
	// line of printable ASCII, and never name a check or a rule.
	Text string `json:"text,omitempty"`
}

// Fact is a named finding that scores nothing by itself. Names are
// lower-case and dotted by the check that sets them ("rdns.name",
// "dkim.domain"); the check's package exports them as constants.
type Fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// FactReverseName is the fact of the client's forward-confirmed reverse DNS
// name (RFC 8601 §2.7.3 iprev), set at the connect stage. The SMTP front
// copies it into [Connection.ReverseName], so that later checks and the
// Received field see it.
const FactReverseName = "rdns.name"

// AuthValue is the result value of an authentication method (RFC 8601
// §2.7, the IANA "Email Authentication Result Names" registry).
type AuthValue string

// The result values moat's checks give.
const (
	AuthNone      AuthValue = "none"
	AuthPass      AuthValue = "pass"
	AuthFail      AuthValue = "fail"
	AuthSoftFail  AuthValue = "softfail"
	AuthNeutral   AuthValue = "neutral"
	AuthPolicy    AuthValue = "policy"
	AuthTempError AuthValue = "temperror"
	AuthPermError AuthValue = "permerror"
)

// AuthResult is the result of one authentication method for one identity:
// a resinfo of RFC 8601 §2.2, "method=value reason=... ptype.property=value".
type AuthResult struct {
	// Method is the method's registered name: "spf", "dkim", "dmarc",
	// "iprev", "arc" (RFC 8601 §2.7).
	Method string `json:"method"`
	// Value is the result.
	Value AuthValue `json:"value"`
	// Reason is a short text for people (reason=), or empty.
	Reason string `json:"reason,omitempty"`
	// Props are the properties that name what was checked, in order:
	// smtp.mailfrom for SPF, header.d and header.s for DKIM, header.from
	// for DMARC, policy.iprev for iprev (RFC 8601 §2.7).
	Props []AuthProp `json:"props,omitempty"`
}

// AuthProp is one property of an authentication result (RFC 8601 §2.3):
// Type is the ptype ("smtp", "header", "body", "policy"), Name the property
// ("mailfrom", "d", "from") and Value its value.
type AuthProp struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Prop returns the value of the property ptype.name, or "".
func (a AuthResult) Prop(ptype, name string) string {
	for _, p := range a.Props {
		if p.Type == ptype && p.Name == name {
			return p.Value
		}
	}
	return ""
}

// Add appends what o found to r.
func (r *Result) Add(o Result) {
	r.Symbols = append(r.Symbols, o.Symbols...)
	r.Auth = append(r.Auth, o.Auth...)
	r.Facts = append(r.Facts, o.Facts...)
	r.Demands = append(r.Demands, o.Demands...)
}

// Clone returns a copy of r whose slices r's later appends cannot reach,
// and that appends to it cannot write into r's.
func (r Result) Clone() Result {
	return Result{Symbols: slices.Clone(r.Symbols), Auth: slices.Clone(r.Auth), Facts: slices.Clone(r.Facts),
		Demands: slices.Clone(r.Demands)}
}

// IsZero reports whether r found nothing.
func (r Result) IsZero() bool {
	return len(r.Symbols) == 0 && len(r.Auth) == 0 && len(r.Facts) == 0 && len(r.Demands) == 0
}

// Fact returns the first value of the fact name, or "" when none was set.
// A nil r has no facts.
func (r *Result) Fact(name string) string {
	if r == nil {
		return ""
	}
	for _, f := range r.Facts {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// FactValues returns every value of the fact name, in the order set.
func (r *Result) FactValues(name string) []string {
	if r == nil {
		return nil
	}
	var out []string
	for _, f := range r.Facts {
		if f.Name == name {
			out = append(out, f.Value)
		}
	}
	return out
}

// AuthOf returns the authentication results of method, in the order found
// (DKIM gives one per signature).
func (r *Result) AuthOf(method string) []AuthResult {
	if r == nil {
		return nil
	}
	var out []AuthResult
	for _, a := range r.Auth {
		if a.Method == method {
			out = append(out, a)
		}
	}
	return out
}

// HasSymbol reports whether a symbol of that name was found.
func (r *Result) HasSymbol(name string) bool {
	if r == nil {
		return false
	}
	for _, s := range r.Symbols {
		if s.Name == name {
			return true
		}
	}
	return false
}
