package rules

import (
	"fmt"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/moatmail/moat/filters"
)

// Env is the environment a rule expression sees. Expressions use the
// lower-case names below (github.com/expr-lang/expr syntax) and must
// evaluate to a boolean:
//
//	score            float64             sum of the scores of the symbols so far,
//	                                     including those of earlier matching rules
//	symbols          map[string]float64  score of each symbol so far, by name
//	                                     (summed when a name appears twice)
//	has(name)        bool                whether a symbol of that name is present
//	from             string              envelope sender (MAIL FROM), "" for the
//	                                     null sender and before the mail stage
//	rcpts            []string            recipients accepted so far
//	rcpt             string              the recipient being checked (rcpt stage
//	                                     only, "" elsewhere)
//	helo             string              HELO/EHLO argument, "" before the helo stage
//	ip               string              client IP address ("192.0.2.1", "2001:db8::1")
//	tls              bool                whether the session is under TLS
//	auth             string              authenticated user, "" when none
//	header(name)     string              first value of a top-level header field
//	                                     (case-insensitive name, raw unfolded text
//	                                     as parsed, not RFC 2047-decoded); "" when
//	                                     absent or before the data stage
//	headers(name)    []string            every value of that field, in message order
//	spf              string              the SPF result of the envelope sender ("pass",
//	                                     "fail", "softfail", "neutral", "none",
//	                                     "temperror", "permerror"), "" when not checked
//	dkim_domains     []string            domains with a valid DKIM signature
//	dmarc            string              the DMARC result ("pass", "fail", "none",
//	                                     "temperror", "permerror"), "" when not checked
//	from_domain      string              the RFC5322.From domain, "" before the data
//	                                     stage or when DMARC was not checked
//	sender_auth      bool                the envelope sender's domain is authenticated:
//	                                     SPF pass, or a DKIM or DMARC pass aligned with it
//	country          string              the client's country (ISO 3166-1 alpha-2,
//	                                     "DE"), "" when unknown (geoip filter)
//	asn              string              the client's autonomous system number in
//	                                     decimal, "" when unknown
//	asn_org          string              the organisation holding that AS, or ""
//	fact(name)       string              first value of a fact a check set so far
//	                                     ("rdns.name", "dkim.domain"), "" when none
//	facts(name)      []string            every value of that fact, in the order set
//	size             int                 message size in bytes, 0 before data
//	policy           string              name of the policy the stage is judged
//	                                     under: the recipient's at rcpt and data
//	                                     ("recipient:ceo@example.com",
//	                                     "domain:example.com", "default"), the
//	                                     default policy's before
//
// Examples:
//
//	has("GTUBE")
//	score > 8 && !tls
//	has("RDNS_NONE") && has("MISSING_DATE") && lower(from) endsWith "@bank.example"
//	rcpt == "abuse@example.com"
//	size > 20000000 && len(headers("Received")) > 30
//	has("ATTACH_EXECUTABLE") && policy == "domain:lab.example.com"
//	has("RDNS_MISMATCH") && fact("rdns.name") == ""
//
// The expr built-in functions (len, lower, upper, any, all, matches, ...)
// are available; an expression that fails at run time (an index out of
// range, say) counts as not matching and is logged.
type Env struct {
	Score       float64               `expr:"score"`
	Symbols     map[string]float64    `expr:"symbols"`
	Has         func(string) bool     `expr:"has"`
	From        string                `expr:"from"`
	Rcpts       []string              `expr:"rcpts"`
	Rcpt        string                `expr:"rcpt"`
	Helo        string                `expr:"helo"`
	IP          string                `expr:"ip"`
	TLS         bool                  `expr:"tls"`
	Auth        string                `expr:"auth"`
	Header      func(string) string   `expr:"header"`
	Headers     func(string) []string `expr:"headers"`
	SPF         string                `expr:"spf"`
	DKIMDomains []string              `expr:"dkim_domains"`
	DMARC       string                `expr:"dmarc"`
	FromDomain  string                `expr:"from_domain"`
	SenderAuth  bool                  `expr:"sender_auth"`
	Country     string                `expr:"country"`
	ASN         string                `expr:"asn"`
	ASNOrg      string                `expr:"asn_org"`
	Fact        func(string) string   `expr:"fact"`
	Facts       func(string) []string `expr:"facts"`
	Size        int                   `expr:"size"`
	Policy      string                `expr:"policy"`
}

// program is a compiled expression and what it reads, so that Decide can
// skip the costly parts of the environment no rule of a stage needs.
type program struct {
	p           *vm.Program
	usesSymbols bool // the symbols map must be filled
	usesIP      bool // the IP must be formatted
	usesAuth    bool // the sender-authentication variables must be filled
}

// compileExpr compiles src as a rule expression, exactly as Validate and
// NewPipeline do.
func compileExpr(src string) (*program, error) {
	p, err := expr.Compile(src, expr.Env(&Env{}), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	v := &usage{}
	node := p.Node()
	ast.Walk(&node, v)
	return &program{p: p, usesSymbols: v.symbols, usesIP: v.ip, usesAuth: v.auth}, nil
}

// usage records which costly variables an expression reads. It may say
// yes where the answer is no (a local variable of the same name), never
// the reverse.
type usage struct{ symbols, ip, auth bool }

// Visit implements ast.Visitor.
func (u *usage) Visit(n *ast.Node) {
	id, ok := (*n).(*ast.IdentifierNode)
	if !ok {
		return
	}
	switch id.Value {
	case "symbols":
		u.symbols = true
	case "ip":
		u.ip = true
	case "spf", "dkim_domains", "dmarc", "from_domain", "sender_auth":
		u.auth = true
	case "$env":
		u.symbols, u.ip, u.auth = true, true, true
	}
}

// evalState is the reusable state of one Decide call: the environment, with
// its function fields bound once to the state, the expression VM and the
// working symbol list. States are pooled so that evaluation allocates
// nothing in the steady state.
type evalState struct {
	env    Env
	vm     vm.VM
	in     *filters.Input
	found  *filters.Result // what the checks found so far, for fact()
	syms   []filters.Symbol
	symMap map[string]float64
}

var statePool = sync.Pool{New: func() any {
	s := &evalState{symMap: make(map[string]float64)}
	s.env.Has = s.has
	s.env.Header = s.header
	s.env.Headers = s.headers
	s.env.Fact = s.fact
	s.env.Facts = s.facts
	return s
}}

func getState() *evalState { return statePool.Get().(*evalState) }

func putState(s *evalState) {
	s.in, s.found = nil, nil
	clear(s.syms[:cap(s.syms)]) // drop references to reasons
	s.syms = s.syms[:0]
	clear(s.symMap)
	e := &s.env
	*e = Env{Has: e.Has, Header: e.Header, Headers: e.Headers, Fact: e.Fact, Facts: e.Facts}
	statePool.Put(s)
}

func (s *evalState) has(name string) bool {
	for i := range s.syms {
		if s.syms[i].Name == name {
			return true
		}
	}
	return false
}

func (s *evalState) header(name string) string {
	if s.in == nil || s.in.Msg == nil {
		return ""
	}
	return s.in.Msg.Header.Get(name)
}

func (s *evalState) headers(name string) []string {
	if s.in == nil || s.in.Msg == nil {
		return nil
	}
	return s.in.Msg.Header.Values(name)
}

func (s *evalState) fact(name string) string { return s.found.Fact(name) }

func (s *evalState) facts(name string) []string { return s.found.FactValues(name) }

// eval runs prog and reports whether it evaluated to true.
func (s *evalState) eval(prog *program) (bool, error) {
	out, err := s.vm.Run(prog.p, &s.env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}
