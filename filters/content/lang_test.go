package content

import (
	"strings"
	"testing"
)

// TestLanguage names the language of the shown text by its common words,
// or its script, and nothing for short or mixed text.
func TestLanguage(t *testing.T) {
	en := "Thank you for the notes from the meeting. We will have the new build ready and this is what you asked for, with the patch that is not yet in the branch. "
	de := "Vielen Dank für die Nachricht. Wir haben das Angebot geprüft und es ist nicht mit dem Plan vereinbar, den wir auch für die nächste Woche haben. Sie können sich gern melden. "
	tr := "Bu hafta icin cok ozel bir kampanya var ve bu kampanya ile daha cok kazanabilirsiniz. Bir tik ile siteye ulasabilir ve bu firsati degil kacirmak olarak degerlendirebilirsiniz. "
	zh := strings.Repeat("我们公司是一家专业生产各种电子产品的企业，欢迎您的光临。", 10)
	ru := strings.Repeat("Мы предлагаем вам лучшие цены на все товары нашего магазина. ", 8)
	tests := []struct {
		name, text, want string
	}{
		{"English", strings.Repeat(en, 3), "en"},
		{"German", strings.Repeat(de, 3), "de"},
		{"Turkish written in ASCII", strings.Repeat(tr, 3), "tr"},
		{"Chinese", zh, "cjk"},
		{"Russian", ru, "cyrillic"},
		{"too short", "Thank you for the notes.", ""},
		{"no common words", strings.Repeat("Lorem ipsum dolor sit amet consectetur adipiscing elit sed eiusmod tempor. ", 6), ""},
		{"half English half German", strings.Repeat(en, 2) + strings.Repeat(de, 2), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Walk(msg("Content-Type: text/plain; charset=utf-8\n", tt.text), Limits{})
			if got := c.Language(); got != tt.want {
				t.Errorf("Language() = %q, want %q", got, tt.want)
			}
		})
	}
}
