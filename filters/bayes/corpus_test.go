package bayes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCorpus(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mbox := write("box.mbox", "From a@example.org Thu Aug 22 08:17:21 2002\n"+
		"Subject: one\n\nbody one\n>From the start\n\n"+
		"From b@example.org Thu Aug 22 08:17:22 2002\nSubject: two\n\nbody two\n")
	crlf := write("crlf.mbox", strings.ReplaceAll("From a@example.org Thu Aug 22 08:17:21 2002\n"+
		"Subject: c1\n\nbody\nFrom inside, unquoted\n\n"+
		"From b@example.org Thu Aug 22 08:17:22 2002\nSubject: c2\n\nbody two\n", "\n", "\r\n"))
	write("folder/1.txt", "From x@example.org Mon Jan  1 00:00:00 2002\nSubject: f1\n\nx\n")
	write("folder/2.txt", "Subject: f2\n\ny\n")
	write("folder/.hidden", "Subject: hidden\n\nz\n")
	write("maildir/cur/1:2,S", "Subject: m1\n\n1\n")
	write("maildir/new/2", "Subject: m2\n\n2\n")
	write("maildir/tmp/3", "Subject: m3\n\n3\n")
	single := write("single.eml", "Subject: s\n\ns\n")
	if err := os.Symlink(single, filepath.Join(dir, "folder", "3.txt")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		path     string
		subjects []string
		check    func(t *testing.T, s []Sample)
	}{
		{mbox, []string{"one", "two"}, func(t *testing.T, s []Sample) {
			if !strings.Contains(string(s[0].Raw), "\nFrom the start\n") {
				t.Errorf(">From not unquoted: %q", s[0].Raw)
			}
			if strings.HasSuffix(string(s[0].Raw), "\n\n") {
				t.Errorf("separator line kept: %q", s[0].Raw)
			}
		}},
		{crlf, []string{"c1", "c2"}, func(t *testing.T, s []Sample) {
			if want := "Subject: c1\r\n\r\nbody\r\nFrom inside, unquoted\r\n"; string(s[0].Raw) != want {
				t.Errorf("first message %q, want %q", s[0].Raw, want)
			}
		}},
		{filepath.Join(dir, "folder"), []string{"f1", "f2", "s"}, nil},
		{filepath.Join(dir, "maildir"), []string{"m1", "m2"}, nil},
		{single, []string{"s"}, nil},
	} {
		got, err := ReadCorpus(tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		var subjects []string
		for _, s := range got {
			if strings.HasPrefix(string(s.Raw), "From ") {
				t.Errorf("%s: %s keeps its mbox From line", tc.path, s.Name)
			}
			line, _, _ := strings.Cut(string(s.Raw), "\n")
			subjects = append(subjects, strings.TrimPrefix(strings.TrimSuffix(line, "\r"), "Subject: "))
		}
		if strings.Join(subjects, ",") != strings.Join(tc.subjects, ",") {
			t.Errorf("%s: subjects %q, want %q", tc.path, subjects, tc.subjects)
		}
		if tc.check != nil && len(got) > 0 {
			tc.check(t, got)
		}
	}
	if _, err := ReadCorpus(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path: want an error")
	}
}

func TestStripFromLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"From a@b Thu Aug 22 2002\nSubject: x\n", "Subject: x\n"},
		{"Subject: x\n", "Subject: x\n"},
		{"From: a@b\n", "From: a@b\n"}, // a header field, not an envelope line
		{"From only", ""},
	} {
		if got := string(StripFromLine([]byte(tc.in))); got != tc.want {
			t.Errorf("StripFromLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
