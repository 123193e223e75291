package throttle

import (
	"testing"

	"github.com/BurntSushi/toml"
)

func TestLoginConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  LoginConfig
		want int    // AuthConcurrency after Validate
		err  string // "" for none
	}{
		{"defaults", LoginConfig{}, DefaultAuthConcurrency, ""},
		{"explicit", LoginConfig{AllowPlaintextLoopback: true, AuthConcurrency: 2}, 2, ""},
		{"negative", LoginConfig{AuthConcurrency: -1}, -1, "auth_concurrency: -1 is below 1"},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("%s: Validate = %v, want %q", tc.name, err, tc.err)
		}
		if tc.cfg.AuthConcurrency != tc.want {
			t.Errorf("%s: auth_concurrency = %d, want %d", tc.name, tc.cfg.AuthConcurrency, tc.want)
		}
	}
}

// TestLoginConfigKeysInTheServersSection: a server's Config embeds
// LoginConfig, and its keys are read from the server's own section.
func TestLoginConfigKeysInTheServersSection(t *testing.T) {
	var cfg struct {
		IMAP struct {
			LoginConfig
			IdleTimeout string `toml:"idle_timeout"`
		} `toml:"imap"`
	}
	md, err := toml.Decode("[imap]\nallow_plaintext_loopback = true\nauth_concurrency = 2\nidle_timeout = \"40m\"\n", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Errorf("keys left undecoded: %v", u)
	}
	if !cfg.IMAP.AllowPlaintextLoopback || cfg.IMAP.AuthConcurrency != 2 || cfg.IMAP.IdleTimeout != "40m" {
		t.Errorf("decoded %+v", cfg.IMAP)
	}
}
