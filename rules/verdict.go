package rules

import (
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

// Verdict is the decision on a message (at StageData) or on an SMTP command
// (at an earlier stage).
type Verdict struct {
	// Action is the most severe of the contributions listed in Reasons.
	Action policies.Action
	// Score is the sum of the scores of all Symbols.
	Score float64
	// Symbols are every symbol known, rule symbols included, sorted by
	// name for stable logs.
	Symbols []filters.Symbol
	// Added are the symbols of the rules that matched at this stage, in
	// rule order: what the caller adds to what it found so far, so that
	// later stages see them.
	Added []filters.Symbol
	// Reasons explain each contribution to Action, for logs and the
	// quarantine; they are never sent to the SMTP client.
	Reasons []string
	// Policy is the name of the policy applied ("domain:example.com").
	Policy string
	// Reply is the SMTP reply a forcing rule asked for (its reply key),
	// from the rule whose action decided; zero means the generic reply.
	Reply Reply
	// Text is the reply text the demand that decided asked for
	// (filters.Demand.Text), for an authenticated client only; empty
	// means the generic text of the action.
	Text string
}

// SymbolNames returns the names of the verdict's symbols, in order.
func (v Verdict) SymbolNames() []string {
	names := make([]string, len(v.Symbols))
	for i, s := range v.Symbols {
		names[i] = s.Name
	}
	return names
}

// SymbolDetails returns each symbol as "NAME(score): reason" (the
// reason left out when empty), for the debug log: why a message got its
// score, with the filters' own words (the classifier's probability, the
// rule that matched).
func (v Verdict) SymbolDetails() []string {
	out := make([]string, len(v.Symbols))
	for i, s := range v.Symbols {
		out[i] = s.Name + "(" + formatScore(s.Score) + ")"
		if s.Reason != "" {
			out[i] += ": " + s.Reason
		}
	}
	return out
}

// String returns a compact one-line form for logs:
//
//	quarantine score=12.3 policy=domain:example.com symbols=[BAYES_SPAM(8) GTUBE(4.3)] reasons=["score 12.3 >= quarantine 10 (policy domain:example.com)"]
func (v Verdict) String() string {
	var b strings.Builder
	b.WriteString(v.Action.String())
	b.WriteString(" score=")
	b.WriteString(formatScore(v.Score))
	b.WriteString(" policy=")
	b.WriteString(v.Policy)
	b.WriteString(" symbols=[")
	for i, s := range v.Symbols {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Name)
		b.WriteByte('(')
		b.WriteString(formatScore(s.Score))
		b.WriteByte(')')
	}
	b.WriteByte(']')
	if len(v.Reasons) > 0 {
		b.WriteString(" reasons=[")
		for i, r := range v.Reasons {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.Quote(r))
		}
		b.WriteByte(']')
	}
	return b.String()
}

// formatScore rounds to two decimals for people: sums of float scores
// carry noise ("12.299999999999999").
func formatScore(f float64) string {
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// Decide turns the symbols known at stage into a verdict under pol:
//
//  1. The stage's rules are evaluated in configuration order over [Env]
//     (score so far = the sum of symbols). A matching rule adds a symbol
//     named after it, with its score, so that later rules see it through
//     has() and score; a matching rule with an action forces at least
//     that action, with its reason.
//  2. Score is the sum of all symbols. At StageData the score is mapped to
//     an action by pol's thresholds. At earlier stages the score does not
//     act, and neither do tag or quarantine forced by a rule: there is no
//     message yet to tag or quarantine, so those rules are carried as
//     their symbols, and Decide at StageData applies the forced action of
//     every earlier-stage rule whose symbol it is given. So Decide before
//     StageData returns only accept, tempfail or reject.
//     A check's demand (filters.Demand) acts in the same way.
//  3. A sender (envelope From) on pol's block list is rejected, at any
//     stage where the sender is known. A sender on the allow list has its
//     score-based action waived (accept) when it is authenticated (an SPF
//     pass, or a DKIM or DMARC pass aligned with its domain, found by the
//     checks), while actions forced by rules and demanded by checks still
//     apply: a virus rule still rejects. tempfail (from
//     found.Tempfail) makes the action at least tempfail, a 4yz reply
//     (RFC 5321 §4.2.1): a filter that could not decide never turns into
//     a permanent rejection by itself.
//  4. Action is the most severe of these, and Reasons explain each
//     contribution.
//
// found should be everything known for the transaction: what the earlier
// stages found (with the symbols of the rules they matched, their
// Verdict.Added) plus this stage's Result. in may have nil fields; pol nil
// means policies.Builtin().
func (p *Pipeline) Decide(stage filters.Stage, in *filters.Input, found Result, pol *policies.Policy) Verdict {
	symbols, tempfail := found.Symbols, found.Tempfail
	if pol == nil {
		pol = policies.Builtin()
	}
	v := Verdict{Policy: pol.Name}
	forced := policies.ActionAccept
	force := func(r *rule) {
		if stage < filters.StageData && r.action < policies.ActionTempfail {
			return // carried as its symbol to the data stage
		}
		if r.action > forced || (r.action == forced && v.Reply.IsZero()) {
			v.Reply = r.reply
			if r.action > forced || !r.reply.IsZero() {
				v.Text = "" // the rule decides, not a demand
			}
		}
		forced = max(forced, r.action)
		reason := "rule " + r.name + " forces " + r.action.String()
		if r.reason != "" {
			reason += ": " + r.reason
		}
		v.Reasons = append(v.Reasons, reason)
	}

	score := 0.0
	for _, s := range symbols {
		score += s.Score
	}
	if len(p.forcing) > 0 {
		for _, s := range symbols {
			if r, ok := p.forcing[s.Name]; ok && r.stage < stage {
				force(r)
			}
		}
	}
	// A check's demand acts as a forcing rule does: tag and quarantine
	// wait for the data stage, where what was found still holds them.
	for _, d := range found.Demands {
		if stage < filters.StageData && d.Action < policies.ActionTempfail {
			continue
		}
		honoured := pol.HonoursDemandOf(d.Check)
		if o, ok := p.obs.(DemandObserver); ok {
			o.ObserveDemand(d.Check, d.Action, honoured)
		}
		if !honoured {
			v.Reasons = append(v.Reasons, "check "+d.Check+" demands "+d.Action.String()+": ignored (policy "+pol.Name+")")
			continue
		}
		if d.Action > forced {
			v.Reply = Reply{} // the generic reply of the action
			v.Text = d.Text
		} else if d.Action == forced && v.Text == "" && v.Reply.IsZero() {
			v.Text = d.Text
		}
		forced = max(forced, d.Action)
		reason := "check " + d.Check + " demands " + d.Action.String()
		if d.Reason != "" {
			reason += ": " + d.Reason
		}
		v.Reasons = append(v.Reasons, reason)
	}

	var from string
	if in != nil && in.Env != nil {
		from = in.Env.From
	}
	st := getState()
	st.syms = append(st.syms, symbols...)
	if stage >= 0 && int(stage) < len(p.rules) && len(p.rules[stage]) > 0 {
		st.found = &found.Result
		p.fillEnv(st, stage, in, from)
		st.env.Policy = pol.Name
		for _, r := range p.rules[stage] {
			st.env.Score = score
			ok, err := st.eval(r.prog)
			if err != nil {
				conn := ""
				if in != nil && in.Conn != nil {
					conn = in.Conn.ID
				}
				slog.Warn("rule failed to evaluate; counted as not matching",
					"conn", conn, "rule", r.name, "stage", stage.String(), "err", err)
				continue
			}
			if !ok {
				continue
			}
			if !st.has(r.name) { // never twice, even if Decide is repeated
				sym := filters.Symbol{Name: r.name, Score: r.score, Reason: r.reason}
				st.syms = append(st.syms, sym)
				v.Added = append(v.Added, sym)
				score += r.score
				if st.env.Symbols != nil {
					st.env.Symbols[r.name] += r.score
				}
			}
			if r.action != policies.ActionAccept {
				force(r)
			}
		}
	}
	v.Score = score
	v.Symbols = slices.Clone(st.syms)
	putState(st)
	slices.SortStableFunc(v.Symbols, func(a, b filters.Symbol) int { return strings.Compare(a.Name, b.Name) })

	scoreAction := policies.ActionAccept
	if stage == filters.StageData {
		scoreAction = pol.ActionForScore(score)
	}
	if scoreAction != policies.ActionAccept {
		th, _ := pol.Threshold(scoreAction)
		why := "score " + formatScore(score) + " >= " + scoreAction.String() + " " + formatScore(th) + " (policy " + pol.Name + ")"
		switch {
		case !pol.SenderAllowed(from):
			v.Reasons = append(v.Reasons, why)
		case senderAuthenticated(from, &found.Result):
			v.Reasons = append(v.Reasons, "sender is on the allow list and authenticated: "+why+" waived")
			scoreAction = policies.ActionAccept
		default:
			// Anyone can write an allow-listed address in MAIL FROM:
			// only an authenticated one is waived (as rspamd's
			// whitelist module asks for valid SPF, DKIM or DMARC).
			v.Reasons = append(v.Reasons, why+"; sender is on the allow list but not authenticated (no SPF, DKIM or DMARC pass aligned with its domain): not waived")
		}
	}
	action := max(forced, scoreAction)
	if pol.SenderBlocked(from) {
		action = policies.ActionReject
		v.Reasons = append(v.Reasons, "sender is on the block list")
	}
	if tempfail && action < policies.ActionReject {
		action = max(action, policies.ActionTempfail)
		v.Reasons = append(v.Reasons, "a filter with on_error = tempfail failed")
	}
	v.Action = action
	if action != forced {
		v.Reply = Reply{} // the rule's reply is not the one that decided
		v.Text = ""
	}
	return v
}

// fillEnv sets the environment for the rules of stage.
func (p *Pipeline) fillEnv(st *evalState, stage filters.Stage, in *filters.Input, from string) {
	st.in = in
	e := &st.env
	e.From = from
	if in != nil {
		if in.Env != nil {
			e.Rcpts = in.Env.Rcpts
		}
		if stage == filters.StageRcpt {
			e.Rcpt = in.Rcpt
		}
		if c := in.Conn; c != nil {
			e.Helo = c.Helo
			e.TLS = c.TLS != nil
			e.Auth = c.AuthUser
			if p.usesIP[stage] && c.RemoteIP.IsValid() {
				e.IP = c.RemoteIP.Unmap().String()
			}
		}
		if in.Msg != nil {
			e.Size = len(in.Msg.Raw)
		}
	}
	if f := st.found; f != nil {
		e.Country, e.ASN, e.ASNOrg = f.Fact(factCountry), f.Fact(factASN), f.Fact(factASNOrg)
	}
	if f := st.found; f != nil && p.usesAuth[stage] {
		e.SPF = authValue(f, "spf")
		e.DMARC = authValue(f, "dmarc")
		e.DKIMDomains = f.FactValues(factDKIMDomain)
		e.FromDomain = f.Fact(factFromDomain)
		e.SenderAuth = senderAuthenticated(from, f)
	}
	if p.usesSymbols[stage] {
		for _, s := range st.syms {
			st.symMap[s.Name] += s.Score
		}
		e.Symbols = st.symMap
	}
}
