package ratelimit

import (
	"testing"
	"time"

	"github.com/moatmail/moat/filters"
)

// testUserLimits is the per-user limits' behaviour over the stores open
// gives: the memory store and Redis must agree.
func testUserLimits(t *testing.T, open func() Store) {
	alice := client{ip: "192.0.2.10", from: "alice@example.com", auth: "alice@example.com"}
	aliceElsewhere := client{ip: "2001:db8::77", from: "sales@example.org", auth: "Alice@Example.com"}
	aliceWebmail := client{ip: "127.0.0.1", from: "alice@example.com", auth: "alice@example.com"} // exempt network
	bob := client{ip: "192.0.2.10", from: "bob@example.com", auth: "bob@example.com"}             // alice's NAT
	stranger := client{ip: "192.0.2.10", from: "news@example.net"}

	tests := []struct {
		name  string
		stage filters.Stage
		sym   string
		limit string
		text  string
		// spend is who uses the allowance up; then is who comes next and
		// whether they are held back.
		spend    client
		then     client
		heldBack bool
	}{
		{"messages: the user is held back", filters.StageMail, SymMsgUser, "messages_per_user", TextMsgUser, alice, alice, true},
		{"messages: wherever the user connects from, whatever MAIL FROM", filters.StageMail, SymMsgUser, "messages_per_user", TextMsgUser, alice, aliceElsewhere, true},
		{"messages: an exempt network does not waive a user's limit", filters.StageMail, SymMsgUser, "messages_per_user", TextMsgUser, aliceWebmail, alice, true},
		{"messages: another user behind the same address is not", filters.StageMail, SymMsgUser, "messages_per_user", TextMsgUser, alice, bob, false},
		{"messages: a stranger from the same address is not", filters.StageMail, SymMsgUser, "messages_per_user", TextMsgUser, alice, stranger, false},
		{"recipients: the user is held back", filters.StageRcpt, SymRcptUser, "recipients_per_user", TextRcptUser, alice, aliceElsewhere, true},
		{"recipients: another user is not", filters.StageRcpt, SymRcptUser, "recipients_per_user", TextRcptUser, alice, bob, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := noLimits()
			cfg.MessagesPerUser = Rate{3, time.Hour}
			cfg.RecipientsPerUser = Rate{5, time.Hour}
			// The per-network limits would stop the first user's
			// neighbours: they do not count authenticated users.
			cfg.MessagesPerNetwork = Rate{1, time.Hour}
			cfg.RecipientsPerNetwork = Rate{1, time.Hour}
			e := setupStore(t, cfg, open())
			n := cfg.MessagesPerUser.Limit
			if tt.stage == filters.StageRcpt {
				n = cfg.RecipientsPerUser.Limit
			}
			for i := range n {
				if sym, _ := e.checkText(t, tt.stage, tt.spend); sym != "" {
					t.Fatalf("attempt %d of %d: %s", i+1, n, sym)
				}
			}
			sym, text := e.checkText(t, tt.stage, tt.then)
			if !tt.heldBack {
				if sym != "" {
					t.Errorf("%+v after the first used up its allowance: %s", tt.then, sym)
				}
				return
			}
			if sym != tt.sym || text != tt.text {
				t.Errorf("over the limit: %q with text %q, want %q with %q", sym, text, tt.sym, tt.text)
			}
			if got := e.obs.get(tt.limit); got < 1 {
				t.Errorf("%s hits counted %d", tt.limit, got)
			}
			// A third of the period later (and a second: floating point),
			// a third of the allowance is back.
			e.now = e.now.Add(time.Hour/3 + time.Second)
			if sym := e.check(t, tt.stage, tt.then); sym != "" {
				t.Errorf("after a third of the period: %s", sym)
			}
		})
	}

	t.Run("a limit off counts nothing for users", func(t *testing.T) {
		cfg := noLimits()
		cfg.MessagesPerNetwork = Rate{1, time.Hour}
		e := setupStore(t, cfg, open())
		for range 5 {
			if sym := e.check(t, filters.StageMail, alice); sym != "" {
				t.Fatalf("with messages_per_user off: %s", sym)
			}
		}
	})

	t.Run("a stranger's demand has no text", func(t *testing.T) {
		cfg := noLimits()
		cfg.MessagesPerNetwork = Rate{1, time.Hour}
		e := setupStore(t, cfg, open())
		e.check(t, filters.StageMail, stranger)
		if sym, text := e.checkText(t, filters.StageMail, stranger); sym != SymMsgNetwork || text != "" {
			t.Errorf("stranger over messages_per_network: %q with text %q", sym, text)
		}
	})
}

func TestUserLimits(t *testing.T) { eachStore(t, testUserLimits) }

// TestDefaultUserLimits: by default a user sends 100 messages at once,
// then about 100 an hour, and as many recipients as 1000 at once.
func TestDefaultUserLimits(t *testing.T) {
	e := setup(t, DefaultConfig())
	user := client{ip: "127.0.0.1", from: "alice@example.com", auth: "alice@example.com"}
	for i := range 1000 {
		if sym := e.check(t, filters.StageRcpt, user); sym != "" {
			t.Fatalf("recipient %d: %s", i+1, sym)
		}
	}
	if sym := e.check(t, filters.StageRcpt, user); sym != SymRcptUser {
		t.Errorf("recipient 1001: %q, want %s", sym, SymRcptUser)
	}
	for i := range 100 {
		if sym := e.check(t, filters.StageMail, user); sym != "" {
			t.Fatalf("message %d: %s", i+1, sym)
		}
	}
	if sym := e.check(t, filters.StageMail, user); sym != SymMsgUser {
		t.Errorf("message 101: %q, want %s", sym, SymMsgUser)
	}
}
