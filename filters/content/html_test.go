package content

import (
	"slices"
	"strings"
	"testing"
)

// TestHTML turns HTML into text and links.
func TestHTML(t *testing.T) {
	tests := []struct {
		name, in, text string
		urls           []string
	}{
		{"entities", "<p>a &lt;b&gt; &amp; &eacute; &#x263A;</p>", "a <b> & é ☺\n", nil},
		{"white space", "  lots \n\t of   space  ", "lots of space ", nil},
		{"blocks", "<div>one</div><div>two<br>three</div><ul><li>i<li>j</ul>", "one\ntwo\nthree\ni\nj\n", nil},
		{"script and style", "<script>x=1</script><style>p{}</style>kept<script src='http://s.example.test/a.js'/>gone</script>!", "kept!", []string{"http://s.example.test/a.js"}},
		{"uppercase script", "<SCRIPT>evil()</SCRIPT>ok", "ok", nil},
		{"link after its text", `<a href="https://a.example.test/">go</a> on`, "go https://a.example.test/ on", []string{"https://a.example.test/"}},
		{"unclosed link", `<a href="https://a.example.test/">go`, "go https://a.example.test/ ", []string{"https://a.example.test/"}},
		{"links not kept", `<a href="javascript:x()">a</a><a href="cid:1">b</a><a href="/rel">c</a><img src="data:image/png;base64,AAAA">`, "abc", nil},
		{"background and action", `<body background="http://bg.example.test/i.png"><form action="https://f.example.test/post">`, "", []string{"http://bg.example.test/i.png", "https://f.example.test/post"}},
		{"bare URL in text", "visit http://bare.example.test/x, now", "visit http://bare.example.test/x, now", []string{"http://bare.example.test/x"}},
		{"upper-case tags and attributes", `<A HREF="HTTPS://UP.example.test/">Up</A><IMG SRC='http://i.example.test/'><P>x`, "Up HTTPS://UP.example.test/ \nx", []string{"HTTPS://UP.example.test/", "http://i.example.test/"}},
		{"attribute without link", `<a name="top" class="href">anchor</a>`, "anchor", nil},
		{"comment dropped", "a<!-- hidden http://c.example.test/ -->b", "ab", nil},
		{"broken markup", "<p <a href=x>text</", "text</", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := walker{lim: DefaultLimits(), c: &Content{}}
			w.html([]byte(tt.in), false, &TextPart{})
			if got := w.text.String(); got != tt.text {
				t.Errorf("text %q, want %q", got, tt.text)
			}
			if !slices.Equal(w.c.URLs, tt.urls) {
				t.Errorf("URLs %q, want %q", w.c.URLs, tt.urls)
			}
			if !w.c.HTML {
				t.Error("HTML not set")
			}
			// Quiet: the same links, no text.
			q := walker{lim: DefaultLimits(), c: &Content{}}
			q.html([]byte(tt.in), true, &TextPart{})
			if q.text.Len() != 0 || q.c.HTML || !slices.Equal(q.c.URLs, tt.urls) {
				t.Errorf("quiet: text %q, HTML %v, URLs %q", q.text.String(), q.c.HTML, q.c.URLs)
			}
		})
	}
}

// TestBareURLs finds URLs written out in text.
func TestBareURLs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"see https://a.example.test/p?q=1.", []string{"https://a.example.test/p?q=1"}},
		{"HTTP://UPPER.example.test/", []string{"HTTP://UPPER.example.test/"}},
		{"(http://paren.example.test/x)", []string{"http://paren.example.test/x"}},
		{"http://wiki.example.test/A_(b)", []string{"http://wiki.example.test/A_(b)"}},
		{"<http://angle.example.test/>", []string{"http://angle.example.test/"}},
		{`"http://q.example.test/"`, []string{"http://q.example.test/"}},
		{"http://[2001:db8::1]:8080/", []string{"http://[2001:db8::1]:8080/"}},
		{"http://a.example.test/\u00a0next", []string{"http://a.example.test/"}},
		{"xhttp://no.example.test/ ftp://no.example.test/ http:// https://", nil},
		{"http://dup.example.test/ http://dup.example.test/", []string{"http://dup.example.test/"}},
		{"a://b://c http://ok.example.test", []string{"http://ok.example.test"}},
	}
	for _, tt := range tests {
		w := walker{c: &Content{}}
		w.bareURLs([]byte(tt.in))
		if !slices.Equal(w.c.URLs, tt.want) {
			t.Errorf("bareURLs(%q) = %q, want %q", tt.in, w.c.URLs, tt.want)
		}
	}
}

// TestURLBounds checks the bounds on Content.URLs and the switch to a set.
func TestURLBounds(t *testing.T) {
	var b strings.Builder
	for i := range MaxURLs + 50 {
		b.WriteString("http://h")
		b.WriteString(strings.Repeat("x", i%7))
		b.WriteString(".example.test/")
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString(strings.Repeat("y", i/26))
		b.WriteString(" http://h.example.test/again ")
	}
	b.WriteString("http://long.example.test/" + strings.Repeat("z", 3*MaxURLBytes))
	w := walker{c: &Content{}}
	w.bareURLs([]byte(b.String()))
	if len(w.c.URLs) != MaxURLs {
		t.Fatalf("%d URLs, want %d", len(w.c.URLs), MaxURLs)
	}
	seen := map[string]bool{}
	for _, u := range w.c.URLs {
		if seen[u] {
			t.Fatalf("duplicate %q", u)
		}
		seen[u] = true
	}
	w = walker{c: &Content{}}
	w.bareURLs([]byte("http://long.example.test/" + strings.Repeat("é", MaxURLBytes)))
	if len(w.c.URLs) != 1 || len(w.c.URLs[0]) > MaxURLBytes || !strings.HasPrefix(w.c.URLs[0], "http://long") {
		t.Fatalf("long URL: %d bytes", len(w.c.URLs[0]))
	}
	if !slices.Equal([]byte(w.c.URLs[0]), []byte(strings.ToValidUTF8(w.c.URLs[0], "?"))) {
		t.Error("long URL cut inside a character")
	}
}
