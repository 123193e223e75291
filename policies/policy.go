package policies

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/moatmail/moat/filters/address"
)

// Policy is a resolved policy: every value is known, nothing is inherited
// any more. A Policy is shared by every recipient it covers and must be
// treated as read-only.
type Policy struct {
	// Name says where the policy comes from: "default",
	// "domain:example.com" or "recipient:ceo@example.com".
	Name string
	// TagScore, QuarantineScore and RejectScore are the score thresholds;
	// a threshold that is switched off is +Inf.
	TagScore        float64
	QuarantineScore float64
	RejectScore     float64
	// SubjectPrefix is added to the Subject of tagged mail; it may be "".
	SubjectPrefix string
	// AllowSenders waives score-based actions for matching senders.
	AllowSenders SenderList
	// BlockSenders rejects matching senders.
	BlockSenders SenderList

	disabled     map[string]struct{}
	disabledList []string
	ignored      map[string]struct{} // ignore_demands
	ignoredList  []string
	// anySender: every sender counts as allowed (WithSenderAllowed).
	anySender bool
}

// WithSenderAllowed returns a copy of p under which the sender counts as
// allowed whatever AllowSenders says: the policy of a recipient who put
// this transaction's sender on their own allow list (a message released
// from their quarantine). The copy keeps p's Name (rules that name the
// policy still match it) but is a policy of its own: the gateway compares
// policies by pointer, so recipients split from those of p as they do
// between any two policies.
func (p *Policy) WithSenderAllowed() *Policy {
	c := *p
	c.anySender = true
	return &c
}

// ActionForScore maps a score to the action of the thresholds: at or above
// reject → reject, at or above quarantine → quarantine, at or above tag →
// tag, else accept. It never returns tempfail.
func (p *Policy) ActionForScore(score float64) Action {
	switch {
	case score >= p.RejectScore:
		return ActionReject
	case score >= p.QuarantineScore:
		return ActionQuarantine
	case score >= p.TagScore:
		return ActionTag
	}
	return ActionAccept
}

// Threshold returns the threshold at which a reaches, and whether a has a
// threshold at all (only tag, quarantine and reject have one).
func (p *Policy) Threshold(a Action) (float64, bool) {
	switch a {
	case ActionTag:
		return p.TagScore, true
	case ActionQuarantine:
		return p.QuarantineScore, true
	case ActionReject:
		return p.RejectScore, true
	}
	return math.Inf(1), false
}

// SenderAllowed reports whether the envelope sender addr is on the allow
// list. The null sender "" never is.
func (p *Policy) SenderAllowed(addr string) bool { return p.anySender || p.AllowSenders.Match(addr) }

// SenderBlocked reports whether the envelope sender addr is on the block
// list. The null sender "" never is.
func (p *Policy) SenderBlocked(addr string) bool { return p.BlockSenders.Match(addr) }

// Runs reports whether the named filter runs under this policy, that is
// whether it is not in disable_filters.
func (p *Policy) Runs(filter string) bool {
	_, off := p.disabled[filter]
	return !off
}

// DisabledFilters returns the names of the filters that do not run under
// this policy, sorted. The caller must not modify the returned slice.
func (p *Policy) DisabledFilters() []string { return p.disabledList }

// HonoursDemandOf reports whether a demand of the named filter acts under
// this policy, that is whether it is not in ignore_demands.
func (p *Policy) HonoursDemandOf(filter string) bool {
	_, off := p.ignored[filter]
	return !off
}

// IgnoredDemands returns the names of the filters whose demands this
// policy ignores, sorted. The caller must not modify the returned slice.
func (p *Policy) IgnoredDemands() []string { return p.ignoredList }

// Set is every policy of a configuration, resolved once. It is immutable
// and safe for concurrent use.
type Set struct {
	def     *Policy
	sub     *Policy
	domains map[string]*Policy
	rcpts   map[string]*Policy
}

// New checks cfg and resolves every policy in it.
func New(cfg Config) (*Set, error) {
	s, err := build(cfg)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	return s, nil
}

// For returns the policy of a recipient: its recipient policy if there is
// one, else the policy of its domain, else the default policy. Lookups
// ignore ASCII case (see [Config]). The result is shared: two recipients
// under the same policy get the same pointer, so callers may split a
// transaction by comparing policies with ==. For never returns nil.
func (s *Set) For(rcpt string) *Policy {
	if rcpt == "" {
		return s.def
	}
	a := lowerASCII(rcpt)
	if p, ok := s.rcpts[a]; ok {
		return p
	}
	if _, domain, ok := address.Split(a); ok {
		if p, ok := s.domains[domain]; ok {
			return p
		}
	}
	return s.def
}

// Default returns the default policy, which applies before any recipient
// is known (connect, helo and mail stages).
func (s *Set) Default() *Policy { return s.def }

// Submission returns the policy of submitted mail ([Config.Submission]).
func (s *Set) Submission() *Policy { return s.sub }

// Policies returns every policy of the set: the default policy first, then
// domain and recipient policies sorted by name, then the submission
// policy.
func (s *Set) Policies() []*Policy {
	out := make([]*Policy, 0, 1+len(s.domains)+len(s.rcpts))
	for _, p := range s.domains {
		out = append(out, p)
	}
	for _, p := range s.rcpts {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return append(append([]*Policy{s.def}, out...), s.sub)
}

// DisabledFilters returns every filter name that some policy switches off
// or ignores the demands of, sorted and without duplicates, so that the
// caller can check each names a filter of the pipeline.
func (s *Set) DisabledFilters() []string {
	var out []string
	for _, p := range s.Policies() {
		out = append(out, p.disabledList...)
		out = append(out, p.ignoredList...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Builtin returns the built-in default policy (thresholds 5, 10 and 20, no
// lists, no prefix), for callers that have no Set. It is shared.
func Builtin() *Policy { return builtin() }

var builtin = sync.OnceValue(func() *Policy {
	return &Policy{
		Name:            "default",
		TagScore:        DefaultTagScore,
		QuarantineScore: DefaultQuarantineScore,
		RejectScore:     DefaultRejectScore,
	}
})

// build resolves cfg; Validate and New share it so that a configuration
// that validates is exactly one that builds.
func build(cfg Config) (*Set, error) {
	var errs []error
	s := &Set{
		domains: make(map[string]*Policy, len(cfg.Domains)),
		rcpts:   make(map[string]*Policy, len(cfg.Recipients)),
	}
	base := *builtin()
	s.def, errs = resolve("policies.default", "default", cfg.Default, &base, errs)

	for _, raw := range sortedKeys(cfg.Domains) {
		key := fmt.Sprintf("policies.domains.%q", raw)
		d := lowerASCII(raw)
		if err := checkDomain(d); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		if _, dup := s.domains[d]; dup {
			errs = append(errs, fmt.Errorf("%s: domain %q is configured twice (keys are not case-sensitive)", key, d))
			continue
		}
		s.domains[d], errs = resolve(key, "domain:"+d, cfg.Domains[raw], s.def, errs)
	}

	for _, raw := range sortedKeys(cfg.Recipients) {
		key := fmt.Sprintf("policies.recipients.%q", raw)
		a := lowerASCII(raw)
		if err := checkAddress(a); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			continue
		}
		if _, dup := s.rcpts[a]; dup {
			errs = append(errs, fmt.Errorf("%s: recipient %q is configured twice (keys are not case-sensitive)", key, a))
			continue
		}
		parent := s.def
		if p, ok := s.domains[address.Domain(a)]; ok {
			parent = p
		}
		s.rcpts[a], errs = resolve(key, "recipient:"+a, cfg.Recipients[raw], parent, errs)
	}

	// Submission: the default policy without the marks of spam, which a
	// user's own outgoing mail should not carry to its readers.
	sub := *s.def
	sub.TagScore, sub.QuarantineScore, sub.SubjectPrefix = math.Inf(1), math.Inf(1), ""
	s.sub, errs = resolve("policies.submission", "submission", cfg.Submission, &sub, errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// resolve lays pc over parent. It returns the policy even when pc has
// errors, so that the levels below can still be checked.
func resolve(key, name string, pc PolicyConfig, parent *Policy, errs []error) (*Policy, []error) {
	p := *parent
	p.Name = name
	errs = append(errs, applyThresholds(key, pc, &p)...)
	if pc.SubjectPrefix != nil {
		if i := strings.IndexAny(*pc.SubjectPrefix, "\r\n"); i >= 0 {
			// A line break would let the prefix inject header fields
			// (RFC 5322 §2.2: a field body ends at CRLF).
			errs = append(errs, fmt.Errorf("%s.subject_prefix: holds a line break", key))
		} else {
			p.SubjectPrefix = *pc.SubjectPrefix
		}
	}
	if pc.AllowSenders != nil {
		l, err := newSenderList(key+".allow_senders", pc.AllowSenders)
		errs = appendErr(errs, err)
		p.AllowSenders = l
	}
	if pc.BlockSenders != nil {
		l, err := newSenderList(key+".block_senders", pc.BlockSenders)
		errs = appendErr(errs, err)
		p.BlockSenders = l
	}
	if pc.DisableFilters != nil {
		p.disabled, p.disabledList, errs = filterNames(key+".disable_filters", pc.DisableFilters, errs)
	}
	if pc.IgnoreDemands != nil {
		p.ignored, p.ignoredList, errs = filterNames(key+".ignore_demands", pc.IgnoreDemands, errs)
	}
	return &p, errs
}

// filterNames reads a list of filter names as a set and a sorted list
// without duplicates.
func filterNames(key string, names []string, errs []error) (map[string]struct{}, []string, []error) {
	set := make(map[string]struct{}, len(names))
	var list []string
	for i, n := range names {
		if err := checkFilterName(n); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d] %q: %w", key, i, n, err))
			continue
		}
		if _, dup := set[n]; dup {
			continue
		}
		set[n] = struct{}{}
		list = append(list, n)
	}
	slices.Sort(list)
	return set, list, errs
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		errs = append(errs, err)
	}
	return errs
}

func sortedKeys(m map[string]PolicyConfig) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
