package bayes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// A synthetic corpus: spam and ham share common words and differ in a
// vocabulary of their own, with senders, subjects and links to match.
var (
	commonWords = strings.Fields(`the a to of and in is it you that for on with this be are as at
		have from or an by not we your all can will our more about one if so what which`)
	spamWords = strings.Fields(`viagra cheap offer winner money free click unsubscribe credit loan
		guaranteed mortgage pills discount limited casino bonus rich prize urgent investment`)
	hamWords = strings.Fields(`meeting patch kernel review release thanks lunch build commit branch
		agenda notes merge tests deploy schedule minutes draft budget compiler`)
)

// synthMessage builds one raw message of about size bytes of body text.
func synthMessage(r *rand.Rand, spam bool, n, size int) []byte {
	own, from, host, subj := hamWords, "Alice Example <alice@lists.example.org>", "git.example.org", "Re: weekly notes"
	if spam {
		own, from, host, subj = spamWords, "Best Deals <promo@mailer.cheap-deals.biz>", "track.cheap-deals.biz", "You are a WINNER"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: bob@example.com\r\nSubject: %s %d\r\nMessage-ID: <%d.%v@example.net>\r\n"+
		"Date: Thu, 22 Aug 2002 08:17:21 -0400\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", from, subj, n, n, spam)
	for b.Len() < size {
		w := commonWords[r.IntN(len(commonWords))]
		if r.IntN(3) == 0 {
			w = own[r.IntN(len(own))]
		}
		b.WriteString(w)
		if r.IntN(12) == 0 {
			b.WriteString(".\r\n")
		} else {
			b.WriteByte(' ')
		}
	}
	fmt.Fprintf(&b, "\r\nhttps://%s/x/%d\r\n", host, n)
	return []byte(b.String())
}

// synthCorpus returns nspam spam and nham ham samples.
func synthCorpus(seed uint64, nspam, nham, size int) (spam, ham []Sample) {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range nspam {
		spam = append(spam, Sample{Name: fmt.Sprintf("spam-%d", i), Raw: synthMessage(r, true, i, size)})
	}
	for i := range nham {
		ham = append(ham, Sample{Name: fmt.Sprintf("ham-%d", i), Raw: synthMessage(r, false, i, size)})
	}
	return spam, ham
}

// newTestClassifier opens a classifier on a fresh database in a test
// folder.
func newTestClassifier(t testing.TB, cfg Config) *Classifier {
	t.Helper()
	c, err := Open(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trainedClassifier returns a classifier that learned nspam and nham
// synthetic messages.
func trainedClassifier(t testing.TB, cfg Config, nspam, nham int) *Classifier {
	t.Helper()
	c := newTestClassifier(t, cfg)
	spam, ham := synthCorpus(7, nspam, nham, 1500)
	ctx := context.Background()
	if _, err := c.LearnBatch(ctx, "", spam, ham); err != nil {
		t.Fatal(err)
	}
	return c
}

func dbPath(c *Classifier) string {
	return c.store.(*SQLiteStore).path
}

// drop empties the mirror, so that models are read from the database
// again on next use (a prune or training no longer needs it).
func (m *mirror) drop() {
	m.mu.Lock()
	m.models = make(map[int64]*memModel)
	m.mu.Unlock()
}
