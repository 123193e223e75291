package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/moatmail/moat/delivery/dkimsign"
	"github.com/moatmail/moat/filters/address"
)

// cmdDKIM runs `moat dkim keygen DOMAIN`: a new signing key, 0600 under
// <data_dir>/dkim (or -out), and the TXT record to publish.
func cmdDKIM(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "keygen" {
		return usageError{"dkim: want keygen"}
	}
	var selector, algo string
	var bits int
	path, rest, err := flags("dkim keygen", args[1:], func(fs *flag.FlagSet) {
		fs.StringVar(&selector, "selector", time.Now().Format("s200601"), "the selector (default: s and the year and month)")
		fs.StringVar(&algo, "algo", "rsa", "ed25519 or rsa (RFC 8463 ed25519 is not yet verified everywhere: sign with both)")
		fs.IntVar(&bits, "bits", 2048, "RSA key size")
	})
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError{"dkim keygen: want one DOMAIN"}
	}
	domain := address.Normalize(rest[0])
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	check := dkimsign.Config{Domains: map[string]dkimsign.DomainKey{domain: {Selector: selector}}}
	if err := check.Validate(cfg.DataDir); err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	file := check.Domains[domain].KeyFile
	key, err := dkimsign.Generate(algo, bits)
	if err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	if err := dkimsign.WriteKey(file, key); err != nil {
		return fmt.Errorf("dkim keygen: %w", err)
	}
	name, value, err := dkimsign.TXTRecord(domain, selector, key)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key written to %s\n\npublish in DNS:\n%s IN TXT ( %s )\n\nand sign with it:\n[dkim_signing.domains.%q]\nselector = %q\n",
		file, name, dkimsign.ZoneStrings(value), domain, selector)
	return nil
}
