package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moatmail/moat/delivery/mailstore"
)

// corpusMessage is one synthetic message: words shared by both classes,
// and a third of words from the class's own vocabulary.
func corpusMessage(r *rand.Rand, spam bool, n int) string {
	common := strings.Fields("the a to of and in is it you that for on with this be are as at have from or")
	own := strings.Fields("meeting patch kernel review release thanks lunch build commit branch agenda notes merge")
	from, subject := "Alice Example <alice@lists.example.org>", "weekly notes"
	if spam {
		own = strings.Fields("viagra cheap offer winner money free click credit loan guaranteed mortgage pills discount")
		from, subject = "Best Deals <promo@mailer.cheap-deals.biz>", "You are a WINNER"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: alice@example.com\r\nSubject: %s %d\r\nMessage-ID: <%d.%v@corpus.example>\r\n"+
		"Date: %s\r\n\r\n", from, subject, n, n, spam, time.Now().Add(-time.Hour).Format(time.RFC1123Z))
	for i := range 150 {
		w := common[r.IntN(len(common))]
		if r.IntN(3) == 0 {
			w = own[r.IntN(len(own))]
		}
		b.WriteString(w)
		if i%12 == 11 {
			b.WriteString(".\r\n")
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// trainingCorpus writes 40 spam as a folder of files and 40 ham as an
// mbox under dir, for `moat bayes train`.
func trainingCorpus(t *testing.T, dir string, r *rand.Rand) (spamDir, hamMbox string) {
	t.Helper()
	spamDir = filepath.Join(dir, "spam")
	if err := os.Mkdir(spamDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var mbox strings.Builder
	for i := range 40 {
		if err := os.WriteFile(filepath.Join(spamDir, fmt.Sprintf("%d.eml", i)), []byte(corpusMessage(r, true, i)), 0o600); err != nil {
			t.Fatal(err)
		}
		mbox.WriteString("From MAILER-DAEMON Mon Nov 23 10:00:00 2026\n")
		mbox.WriteString(strings.ReplaceAll(corpusMessage(r, false, i), "\r\n", "\n"))
		mbox.WriteString("\n")
	}
	hamMbox = filepath.Join(dir, "ham.mbox")
	if err := os.WriteFile(hamMbox, []byte(mbox.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return spamDir, hamMbox
}

// TestBayesModelReadAtStart: `moat serve` over a trained model reads it
// as it starts, before any message asks, and logs that it did with the
// model's totals.
func TestBayesModelReadAtStart(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "moat.toml")
	text := testConfig(filepath.Join(dir, "data"), "[filters.bayes]\nmin_spam = 30\nmin_ham = 30\n")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	spamDir, hamMbox := trainingCorpus(t, dir, rand.New(rand.NewPCG(7, 8)))
	if code, out, errOut := cli(t, "", "bayes", "train", "-config", cfgPath, "--spam", spamDir, "--ham", hamMbox); code != 0 {
		t.Fatalf("bayes train: exit %d\n%s%s", code, out, errOut)
	}
	_, logs := startLogged(t, text, slog.LevelInfo)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `msg="bayes model read" spam=40 ham=40`) {
		if time.Now().After(deadline) {
			t.Fatalf("no \"bayes model read\" line with the model's totals in:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBayesTrainedThroughSMTP: `moat bayes train` beside a running moat
// teaches the model it uses (the spam as a folder of files, the ham as an
// mbox); mail then arriving over SMTP gets BAYES_SPAM or BAYES_HAM, and
// spam is tagged. `moat bayes stats` and `moat bayes eval` run on the same
// corpus.
func TestBayesTrainedThroughSMTP(t *testing.T) {
	a := startTest(t, e2ePolicies+`
[filters.bayes]
min_spam = 30
min_ham = 30
`)
	ctx := context.Background()
	if _, err := a.store.AddUser(ctx, "alice@example.com", "pw", mailstore.RoleUser); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "moat.toml")
	if err := os.WriteFile(cfgPath, []byte(testConfig(a.cfg.DataDir, "[filters.bayes]\nmin_spam = 30\nmin_ham = 30\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	spamDir, hamMbox := trainingCorpus(t, dir, r)

	tc := clientTLS(t, a.cfg.DataDir)
	deliver := func(spam bool, n int) string {
		t.Helper()
		msg := corpusMessage(r, spam, n)
		if res := send(t, a.Addr("smtp"), tc, "sender@example.net", []string{"alice@example.com"}, msg); res.code != 250 {
			t.Fatalf("send: %v", res)
		}
		c := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
		defer c.Close()
		all := fetchAll(t, c, "INBOX")
		return all[len(all)-1]
	}
	if got := deliver(true, 100); !strings.Contains(got, "BAYES_UNTRAINED") {
		t.Fatalf("before training, want BAYES_UNTRAINED in:\n%s", got)
	}

	code, out, errOut := cli(t, "", "bayes", "train", "-config", cfgPath, "--spam", spamDir, "--ham", hamMbox)
	if code != 0 || !strings.Contains(out, "40 spam and 40 ham messages read, 80 learned") {
		t.Fatalf("bayes train: exit %d\n%s%s", code, out, errOut)
	}
	// The running moat sees the other process's training within a second.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tot, err := a.bayes.Store().Totals(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if tot.Spam == 40 && tot.Ham == 40 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running moat still sees %+v after training", tot)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := deliver(true, 101); !strings.Contains(got, "BAYES_SPAM") || !strings.Contains(got, "X-Spam-Flag: YES") {
		t.Errorf("spam after training, want BAYES_SPAM and a tag in:\n%s", got)
	}
	if got := deliver(false, 102); !strings.Contains(got, "BAYES_HAM") || strings.Contains(got, "X-Spam-Flag") {
		t.Errorf("ham after training, want BAYES_HAM and no tag in:\n%s", got)
	}

	// The learned ham is all English: a message in German is in a
	// language it never was in (LANG_UNFAMILIAR), one in English is not.
	de := strings.Repeat("Vielen Dank für die Nachricht. Wir haben das Angebot geprüft und es ist nicht mit dem Plan vereinbar, den wir auch für die nächste Woche haben. ", 4)
	if res := send(t, a.Addr("smtp"), tc, "sender@example.net", []string{"alice@example.com"},
		message("sender@example.net", "alice@example.com", "Angebot", de)); res.code != 250 {
		t.Fatalf("send: %v", res)
	}
	ic := imapLogin(t, a.Addr("imap"), tc, "alice@example.com", "pw")
	all := fetchAll(t, ic, "INBOX")
	ic.Close()
	if got := all[len(all)-1]; !strings.Contains(got, "LANG_UNFAMILIAR") {
		t.Errorf("German after English training, want LANG_UNFAMILIAR in:\n%s", got)
	}
	if got := deliver(false, 103); strings.Contains(got, "LANG_UNFAMILIAR") {
		t.Errorf("English after English training, want no LANG_UNFAMILIAR in:\n%s", got)
	}

	code, out, errOut = cli(t, "", "bayes", "stats", "-config", cfgPath)
	if code != 0 || !regexp.MustCompile(`\(global\)\s+40\s+40\s+\d+\s+true\s+true`).MatchString(out) {
		t.Errorf("bayes stats: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "", "bayes", "eval", "-config", cfgPath, "--spam", spamDir, "--ham", hamMbox, "--folds", "4")
	if code != 0 || !strings.Contains(out, "spam recall 100.00 % (FP 0.00 %") {
		t.Errorf("bayes eval: exit %d\n%s%s", code, out, errOut)
	}

	// A holdout: learn the 80 messages above, judge 20 others.
	testSpam, testHam := filepath.Join(dir, "test-spam"), filepath.Join(dir, "test-ham")
	for _, d := range []string{testSpam, testHam} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		for d, spam := range map[string]bool{testSpam: true, testHam: false} {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("%d.eml", i)), []byte(corpusMessage(r, spam, 200+i)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	code, out, errOut = cli(t, "", "bayes", "eval", "-config", cfgPath, "--spam", testSpam, "--ham", testHam,
		"--train-spam", spamDir, "--train-ham", hamMbox)
	if code != 0 || !strings.Contains(out, "learn 40 spam, 40 ham; judge 10 spam, 10 ham (holdout)") ||
		!strings.Contains(out, "folds run: [1] of 2") || !strings.Contains(out, "(10/10)") {
		t.Errorf("bayes eval holdout: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut = cli(t, "", "bayes", "eval", "-config", cfgPath, "--spam", testSpam, "--ham", testHam,
		"--train-spam", spamDir); code != 2 || !strings.Contains(errOut, "--train-spam and --train-ham go together") {
		t.Errorf("bayes eval with --train-spam alone: exit %d, %s", code, errOut)
	}
}
