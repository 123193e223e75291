// Package dkimsign signs the mail moat's users submit with DKIM (RFC 6376,
// RFC 8463 for ed25519-sha256) through go-msgauth/dkim: one key and
// selector per domain, relaxed/relaxed canonicalization, and a fixed set
// of signed fields with From oversigned, so that a From added on the way
// breaks the signature (RFC 6376 §8.15).
package dkimsign

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// Config is the signing configuration, under [dkim_signing].
type Config struct {
	// Domains maps a From domain to its key:
	//
	//	[dkim_signing.domains."example.com"]
	//	selector = "s2026"
	//	key_file = "/etc/moat/dkim/example.com.key"   # default <data_dir>/dkim/<domain>.<selector>.key
	//
	// Mail whose From is in a domain not listed goes unsigned.
	Domains map[string]DomainKey `toml:"domains"`
}

// DomainKey is one domain's selector and private key.
type DomainKey struct {
	// Selector names the key in DNS: <selector>._domainkey.<domain>.
	Selector string `toml:"selector"`
	// KeyFile is a PEM private key (PKCS#8, or PKCS#1 for RSA), RSA of at
	// least 1024 bits (RFC 8301 §3.2) or ed25519; default
	// <data_dir>/dkim/<domain>.<selector>.key, where `moat dkim keygen`
	// writes it.
	KeyFile string `toml:"key_file"`
}

// Validate checks the configuration and fills default key paths under
// dataDir. Errors name the key.
func (c *Config) Validate(dataDir string) error {
	var errs []error
	out := make(map[string]DomainKey, len(c.Domains))
	for raw, k := range c.Domains {
		d := strings.ToLower(strings.TrimSuffix(raw, "."))
		key := fmt.Sprintf("domains.%q", raw)
		if !validLabelList(d) {
			errs = append(errs, fmt.Errorf("%s: %q is not a domain name", key, raw))
			continue
		}
		if !validLabelList(k.Selector) {
			errs = append(errs, fmt.Errorf("%s.selector: %q is not a selector (RFC 6376 §3.1: dot-separated labels)", key, k.Selector))
			continue
		}
		if k.KeyFile == "" {
			k.KeyFile = DefaultKeyFile(dataDir, d, k.Selector)
		}
		out[d] = k
	}
	c.Domains = out
	return errors.Join(errs...)
}

// DefaultKeyFile is where a domain's key is kept unless configured.
func DefaultKeyFile(dataDir, domain, selector string) string {
	return filepath.Join(dataDir, "dkim", domain+"."+selector+".key")
}

func validLabelList(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// SignedFields are the fields signed when present, after RFC 6376 §5.4.1;
// From comes twice: a second From added later breaks the signature
// (oversigning, §8.15). A field listed but absent is signed as absent,
// so adding it later breaks the signature too.
var SignedFields = []string{"From", "From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"List-Unsubscribe", "List-Unsubscribe-Post"}

// Signer signs with the configured keys. It is safe for concurrent use.
type Signer struct {
	keys map[string]domainSigner
}

type domainSigner struct {
	selector string
	key      crypto.Signer
}

// New loads every configured key; cfg must have been validated.
func New(cfg Config) (*Signer, error) {
	s := &Signer{keys: make(map[string]domainSigner, len(cfg.Domains))}
	for d, k := range cfg.Domains {
		key, err := LoadKey(k.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("dkim_signing.domains.%q.key_file: %w", d, err)
		}
		s.keys[d] = domainSigner{selector: k.Selector, key: key}
	}
	return s, nil
}

// Domains returns the signing domains, sorted.
func (s *Signer) Domains() []string {
	out := make([]string, 0, len(s.keys))
	for d := range s.keys {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// Sign returns the DKIM-Signature field for msg (header and body, CRLF
// line endings) with domain's key, or nil when domain has none.
func (s *Signer) Sign(domain string, msg []byte) ([]byte, error) {
	k, ok := s.keys[strings.ToLower(domain)]
	if !ok {
		return nil, nil
	}
	var sig bytes.Buffer
	err := dkim.Sign(&sig, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: k.selector, Signer: k.key, Hash: crypto.SHA256,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: SignedFields,
	})
	if err != nil {
		return nil, fmt.Errorf("dkim sign %s: %w", domain, err)
	}
	// dkim.Sign writes the signature followed by the message.
	out := sig.Bytes()
	if !bytes.HasSuffix(out, msg) {
		return nil, errors.New("dkim sign: unexpected output")
	}
	return bytes.Clone(out[:len(out)-len(msg)]), nil
}

// LoadKey reads a PEM private key: PKCS#8 (RSA or ed25519) or PKCS#1 RSA.
func LoadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("RSA key of %d bits: RFC 8301 §3.2 wants at least 1024", k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("key of type %T: want RSA or ed25519", key)
}

// Generate makes a new key: algo "ed25519" or "rsa" of bits bits.
func Generate(algo string, bits int) (crypto.Signer, error) {
	switch algo {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "rsa":
		if bits < 1024 {
			return nil, fmt.Errorf("RSA keys of %d bits: RFC 8301 §3.2 wants at least 1024", bits)
		}
		return rsa.GenerateKey(rand.Reader, bits)
	}
	return nil, fmt.Errorf("algorithm %q: want ed25519 or rsa", algo)
}

// WriteKey writes key as PEM PKCS#8 to path, readable by its owner only
// (0600), creating the folder; it refuses to overwrite a key.
func WriteKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TXTRecord returns the DNS name and the TXT value that publish key's
// public half (RFC 6376 §3.6.1; k=ed25519 from RFC 8463).
func TXTRecord(domain, selector string, key crypto.Signer) (name, value string, err error) {
	name = selector + "._domainkey." + domain + "."
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", "", err
		}
		return name, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		// RFC 8463 §4.2: the raw 32-byte key, not SubjectPublicKeyInfo.
		return name, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", "", fmt.Errorf("key of type %T", key.Public())
}

// ZoneStrings splits a TXT value into the quoted strings of at most 255
// bytes a zone file needs (RFC 1035 §3.3.14).
func ZoneStrings(value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, `"`+value[:255]+`"`)
		value = value[255:]
	}
	parts = append(parts, `"`+value+`"`)
	return strings.Join(parts, " ")
}
