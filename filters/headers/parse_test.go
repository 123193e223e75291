package headers

import (
	"testing"
)

func TestValidDate(t *testing.T) {
	tests := []struct {
		date string
		want bool
	}{
		// RFC 5322 §3.3 and the forms seen in real mail.
		{"Mon, 6 Oct 2025 11:14:01 +0200", true},
		{"Mon, 06 Oct 2025 11:14:01 +0200", true},
		{"6 Oct 2025 11:14:01 -0000", true},
		{"Thu, 22 Aug 2002 12:00:00 -0700 (PDT)", true},
		{"Sun, 8 Sep 2002 14:30:00 +0100 (GMT Daylight Time)", true},
		{"Wed, 4 Sep 2002 9:00:00 -0500", true},
		{"Mon,  2 Sep 2002 14:30:00 +0100", true},
		{"Mon, 2 sep 2002 14:30:00 +0100", true},
		{"Mon, 2 Sep 2002 14:30:00.123 +0100", true},
		// RFC 5322 §4.3 obsolete forms.
		{"Mon, 2 Sep 02 14:30:00 +0100", true},          // two-digit year
		{"Mon, 2 Sep 2002 14:30 +0100", true},           // no seconds
		{"Sun, 08 Sep 2002 11:00:00 PDT", true},         // obs-zone
		{"Mon, 2 Sep 2002 14:30:00 GMT", true},          // obs-zone
		{"Mon, 2 Sep 2002 14:30:00 UT", true},           // obs-zone
		{"Mon, 2 Sep 2002 14:30:00 Z", true},            // military zone
		{"Mon, 2 Sep 2002 14:30:00 a", true},            // military zone
		{"(sent) Mon, 2 Sep 2002 14:30:00 +0100", true}, // CFWS before
		{"Mon, 2 Sep 2002 14 : 30 : 00 +0100", true},    // CFWS in time
		{"Mon, 2 Sep (x (nested)) 2002 14:30:00 EDT", true},
		{"Mon, 2\r\n Sep 2002 14:30:00 +0100", true},
		// Not dates.
		{"", false},
		{"yesterday", false},
		{"2002-09-02T14:30:00Z", false},
		{"Mon, 2 Sep 2002 14:30:00", false},   // no zone
		{"Mon, 2 Sep 2002 14:30:00 J", false}, // J is no military zone
		{"Mon, 2 Sep 2002 14:30:00 +01:00", false},
		{"Mon, 31 Feb 2002 14:30:00 +0100", false},
		{"Mon, 2 Sep 2002 25:30:00 +0100", false},
		{"Monday, 2 Sep 2002 14:30:00 +0100", false},
		{"Mon, 2 Sep 2002 14:30:00 +0100 (unclosed", false},
		{"(unclosed Mon, 2 Sep 2002 14:30:00 +0100", false},
	}
	for _, tt := range tests {
		t.Run(tt.date, func(t *testing.T) {
			if got := validDate(tt.date); got != tt.want {
				t.Errorf("validDate(%q) = %v, want %v", tt.date, got, tt.want)
			}
		})
	}
}

func TestValidMsgID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"<20251006091401.4242@mail.example.test>", true},
		{"  <a@b>  ", true},
		{"(comment) <a@b> (trailer)", true},
		{"<000801c25c7e$4b2f8a40$6401a8c0@pc>", true},
		{"<3D7A1B2C.5060708@example.test>", true},
		{"<a..b@c>", true},        // lenient on dots in id-left
		{"<.a@c>", true},          // idem
		{`<"a b"@c>`, true},       // obs-id-left: quoted-string
		{"<a@[192.0.2.1]>", true}, // no-fold-literal
		{"<é@ü.test>", true},      // RFC 6532
		{"", false},
		{"a@b", false},
		{"<a@b", false},
		{"<a@b>>", false},
		{"<ab>", false},
		{"<@b>", false},
		{"<a@>", false},
		{"<a@b..c>", false},
		{"<a@.b>", false},
		{"<a@b.>", false},
		{"<a b@c>", false},
		{"<a@b> <c@d>", false},
		{"<a@b> (unclosed", false},
		{`<"unclosed@b>`, false},
		{"<a@[1.2 .3]>", false},
		{"<a@[unclosed>", false},
		{"<a@b@c>", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := validMsgID(tt.id); got != tt.want {
				t.Errorf("validMsgID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestCountMailboxes(t *testing.T) {
	tests := []struct {
		from    string
		want    int
		wantErr bool
	}{
		{"alice@example.test", 1, false},
		{"Alice <alice@example.test>", 1, false},
		{`"Example, Alice" <alice@example.test>`, 1, false},
		{"a@x.test, b@x.test", 2, false},
		{"=?iso-8859-1?q?Al=E9ce?= <alice@example.test>", 1, false},
		{"=?koi8-r?b?8NLJ18XU?= <ivan@example.test>", 1, false},
		{"Team: a@x.test, b@x.test;", 2, false},
		{"undisclosed-recipients:;", 0, false},
		{"", 0, true},
		{"alice", 0, true},
		{"Alice alice@example.test", 0, true},
		{"<alice@example.test", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			n, err := countMailboxes(tt.from)
			if (err != nil) != tt.wantErr || n != tt.want {
				t.Errorf("countMailboxes(%q) = %d, %v; want %d, error %v", tt.from, n, err, tt.want, tt.wantErr)
			}
		})
	}
}
