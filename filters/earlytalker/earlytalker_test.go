package earlytalker

import (
	"context"
	"strings"
	"testing"

	"github.com/moatmail/moat/filters"
	"github.com/moatmail/moat/policies"
)

func TestCheck(t *testing.T) {
	scoreOnly := DefaultConfig()
	scoreOnly.Action = "score"
	for _, tc := range []struct {
		name     string
		cfg      Config
		pregreet string
		syms     []string
		demand   policies.Action
		reason   string
	}{
		{"waited", DefaultConfig(), "", nil, policies.ActionAccept, ""},
		{"spoke first", DefaultConfig(), "EHLO bot\r\n", []string{SymPregreet}, policies.ActionReject, `10 bytes before the greeting: "EHLO bot\r\n"`},
		{"an HTTP request", DefaultConfig(), "CONNECT 192.0.2.1:25 HTTP/1.1\r\n\r\n", []string{SymPregreet, SymHTTP}, policies.ActionReject, "CONNECT"},
		{"a long pregreet is cut in the reason", DefaultConfig(), strings.Repeat("x", 500), []string{SymPregreet}, policies.ActionReject, `xxx"...`},
		{"score only", scoreOnly, "GET / HTTP/1.0\r\n", []string{SymPregreet, SymHTTP}, policies.ActionAccept, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			in := &filters.Input{Conn: &filters.Connection{Pregreet: []byte(tc.pregreet)}}
			r, err := f.Check(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range r.Symbols {
				names = append(names, s.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.syms, ",") {
				t.Errorf("symbols %v, want %v", names, tc.syms)
			}
			if tc.reason != "" && !strings.Contains(r.Symbols[0].Reason, tc.reason) {
				t.Errorf("reason %q, want it to say %q", r.Symbols[0].Reason, tc.reason)
			}
			switch {
			case tc.demand == policies.ActionAccept && len(r.Demands) != 0:
				t.Errorf("demands %+v, want none", r.Demands)
			case tc.demand != policies.ActionAccept && (len(r.Demands) != 1 || r.Demands[0].Action != tc.demand):
				t.Errorf("demands %+v, want %v", r.Demands, tc.demand)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	c := DefaultConfig()
	c.Action = "drop"
	if _, err := New(c); err == nil || !strings.Contains(err.Error(), `action: "drop" is not reject or score`) {
		t.Errorf("New with action drop: %v", err)
	}
}
