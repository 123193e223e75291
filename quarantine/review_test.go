package quarantine

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/moatmail/moat/delivery/mailstore"
)

type learned struct {
	user string
	spam bool
}

type recordingLearner struct {
	mu  sync.Mutex
	got []learned
}

func (l *recordingLearner) LearnSpam(_ context.Context, user string, _ []byte) error {
	return l.record(user, true)
}

func (l *recordingLearner) LearnHam(_ context.Context, user string, _ []byte) error {
	return l.record(user, false)
}

func (l *recordingLearner) record(user string, spam bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, learned{user, spam})
	return nil
}

func TestReview(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	alice := users[0]
	mb := func(name string) mailstore.Mailbox {
		m, err := st.Mailbox(ctx, alice.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	put := func() mailstore.Message {
		e, err := q.Put(ctx, nil, []byte("Subject: q\r\n\r\nx\r\n"), Record{Recipients: []string{alice.Address}}, []int64{alice.ID})
		if err != nil {
			t.Fatal(err)
		}
		msgs, _ := st.Messages(ctx, mb(mailstore.QuarantineMailbox).ID)
		for _, m := range msgs {
			if m.BlobID == e.BlobID {
				return m
			}
		}
		t.Fatal("quarantined message not in Quarantine")
		return mailstore.Message{}
	}
	cases := []struct {
		name     string
		from, to string
		move     bool
		want     []learned
		recordOK bool // the verdict record survives
	}{
		{"released to INBOX", mailstore.QuarantineMailbox, "INBOX", true, []learned{{alice.Address, false}}, false},
		{"copied to INBOX", mailstore.QuarantineMailbox, "INBOX", false, []learned{{alice.Address, false}}, true},
		{"moved to Junk", mailstore.QuarantineMailbox, "Junk", true, []learned{{alice.Address, true}}, false},
		{"INBOX to Junk", "INBOX", "Junk", true, []learned{{alice.Address, true}}, true},
		{"Junk to INBOX", "Junk", "INBOX", true, []learned{{alice.Address, false}}, true},
		{"Junk to Trash", "Junk", "Trash", true, nil, true},
		{"INBOX to Sent", "INBOX", "Sent", true, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := &recordingLearner{}
			r := NewReview(q, l, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			m := put()
			src := mb(tc.from)
			if tc.from != mailstore.QuarantineMailbox {
				// Put the message in the source folder first.
				res, err := st.Copy(ctx, mb(mailstore.QuarantineMailbox).ID, []uint32{m.UID}, src.ID)
				if err != nil {
					t.Fatal(err)
				}
				m.MailboxID, m.UID = src.ID, res.DestUIDs[0]
			}
			var err error
			if tc.move {
				_, err = st.Move(ctx, src.ID, []uint32{m.UID}, mb(tc.to).ID)
			} else {
				_, err = st.Copy(ctx, src.ID, []uint32{m.UID}, mb(tc.to).ID)
			}
			if err != nil {
				t.Fatal(err)
			}
			r.Moved(alice, src, mb(tc.to), []mailstore.Message{m}, tc.move)
			r.Close()
			if len(l.got) != len(tc.want) || (len(tc.want) > 0 && l.got[0] != tc.want[0]) {
				t.Errorf("learned %v, want %v", l.got, tc.want)
			}
			entries, _ := q.List(ctx, alice.Address)
			found := false
			for _, e := range entries {
				found = found || e.BlobID == m.BlobID
			}
			if tc.from == mailstore.QuarantineMailbox && found != tc.recordOK {
				t.Errorf("verdict record present = %v, want %v", found, tc.recordOK)
			}
		})
	}
}

func TestReviewExpungeAndTidy(t *testing.T) {
	ctx := context.Background()
	q, st, users := setup(t)
	alice := users[0]
	l := &recordingLearner{}
	r := NewReview(q, l, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if _, err := q.Put(ctx, nil, []byte("Subject: q\r\n\r\nx\r\n"), Record{Recipients: []string{alice.Address}}, []int64{alice.ID}); err != nil {
		t.Fatal(err)
	}
	qmb, _ := st.Mailbox(ctx, alice.ID, mailstore.QuarantineMailbox)
	msgs, _ := st.Messages(ctx, qmb.ID)
	r.Expunging(alice, qmb, msgs)
	st.StoreFlags(ctx, qmb.ID, []uint32{msgs[0].UID}, mailstore.FlagsAdd, []string{`\Deleted`})
	st.Expunge(ctx, qmb.ID, nil)
	r.Close()
	if len(l.got) != 1 || !l.got[0].spam {
		t.Errorf("learned %v, want one spam", l.got)
	}
	n, err := q.Tidy(ctx)
	if err != nil || n != 1 {
		t.Fatalf("Tidy = %d, %v; want 1 record removed", n, err)
	}
	if entries, _ := q.List(ctx, ""); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
}
