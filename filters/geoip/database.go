package geoip

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/geoip2-golang/v2"
)

// Database describes a loaded database, for the log line at start and
// after a reload.
type Database struct {
	// Key is the configuration key that names it: "country_db" or "asn_db".
	Key string
	// Path is the file.
	Path string
	// Type is the database type of its metadata ("GeoLite2-Country",
	// "GeoIP2-City", "GeoLite2-ASN").
	Type string
	// Built is its build time (metadata build_epoch).
	Built time.Time
}

// database is one configured file and the reader of its current version.
//
// A lookup holds a reference to the reader it uses; a reload swaps in a
// new reader and drops the database's own reference to the old one, which
// is closed (unmapped) when its last lookup finishes. maxminddb's Close
// unmaps the file under a running lookup, so it is never called before.
type database struct {
	key  string
	path string
	// probe refuses a file of the wrong kind (an ASN database given as
	// country_db): it makes a lookup that fails on such a reader.
	probe func(*geoip2.Reader) error

	cur atomic.Pointer[handle] // nil when not loaded or closed

	mu     sync.Mutex  // serialises reloads and Close
	seen   os.FileInfo // the version last opened or refused; nil: none
	gone   bool        // the file was missing at the last look (reported)
	closed bool
}

// handle is one opened version of a database file.
type handle struct {
	r    *geoip2.Reader
	info Database
	// v4only: an IPv4-only database, which holds no IPv6 address and
	// refuses to look one up.
	v4only bool
	// refs counts the database's own reference (while current) and one
	// per lookup; the reader is closed when it drops to zero, and a
	// handle at zero is never used again.
	refs   atomic.Int64
	closed atomic.Bool // for tests: the reader was closed
}

// acquire returns the current reader with a reference the caller must
// release, or nil when no database is loaded.
func (d *database) acquire() *handle {
	if d == nil { // not configured
		return nil
	}
	for {
		h := d.cur.Load()
		if h == nil || h.tryRef() {
			return h
		}
		// h was swapped out and drained between the load and the
		// reference: d.cur already holds its successor.
	}
}

// lookup runs a lookup method of geoip2.Reader for ip on d's current
// reader, holding a reference while it runs. It finds nothing (nil)
// without a reader, or for an IPv6 address in an IPv4-only database.
func lookup[T any](d *database, ip netip.Addr, method func(*geoip2.Reader, netip.Addr) (*T, error)) (*T, error) {
	h := d.acquire()
	if h == nil {
		return nil, nil
	}
	defer h.release()
	if !h.holds(ip) {
		return nil, nil
	}
	return method(h.r, ip)
}

// holds reports whether the database can hold ip (unmapped).
func (h *handle) holds(ip netip.Addr) bool { return ip.Is4() || !h.v4only }

// tryRef takes a reference unless the handle is drained (closed).
func (h *handle) tryRef() bool {
	for {
		n := h.refs.Load()
		if n == 0 {
			return false
		}
		if h.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the reader.
func (h *handle) release() {
	if h.refs.Add(-1) == 0 {
		h.closed.Store(true)
		h.r.Close() // an unmap error leaves nothing to do
	}
}

// open opens the database's file and makes it current. It is called once
// by New, where a file that is missing or broken is a configuration error.
func (d *database) open() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("%s: %w", d.key, err)
	}
	h, err := d.load()
	if err != nil {
		return err
	}
	d.seen = fi
	d.cur.Store(h)
	return nil
}

// reload opens the file again when it changed since it was last looked
// at: another inode (replaced by a rename, as geoipupdate does), size or
// modification time. It returns the new version when it loaded one. A
// file that is missing or that does not open is reported once per
// version, and the loaded version stays.
func (d *database) reload() (*Database, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil
	}
	fi, err := os.Stat(d.path)
	if err != nil {
		if d.gone {
			return nil, nil
		}
		d.gone = true
		return nil, fmt.Errorf("%s: %w; the loaded version stays", d.key, err)
	}
	d.gone = false
	if d.seen != nil && sameVersion(d.seen, fi) {
		return nil, nil
	}
	d.seen = fi
	h, err := d.load()
	if err != nil {
		return nil, fmt.Errorf("%w; the loaded version stays", err)
	}
	if old := d.cur.Swap(h); old != nil {
		old.release()
	}
	return &h.info, nil
}

// load opens the file and checks that it is of d's kind.
func (d *database) load() (*handle, error) {
	r, err := geoip2.Open(d.path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", d.key, d.path, err)
	}
	if err := d.probe(r); err != nil {
		r.Close()
		return nil, fmt.Errorf("%s: %s: %w", d.key, d.path, err)
	}
	md := r.Metadata()
	h := &handle{r: r, info: Database{Key: d.key, Path: d.path, Type: md.DatabaseType,
		Built: time.Unix(int64(md.BuildEpoch), 0).UTC()}, v4only: md.IPVersion == 4}
	h.refs.Store(1)
	return h, nil
}

// close drops the database's reference to its reader: it is closed once
// the lookups running now finish, and later lookups find nothing.
func (d *database) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if h := d.cur.Swap(nil); h != nil {
		h.release()
	}
}

// sameVersion reports whether two looks at a path found the same file,
// unchanged.
func sameVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// probeAddr is any address: a probe lookup only asks whether the reader
// supports the method.
var probeAddr = netip.IPv6Unspecified()

// probeCountry refuses a database without country records.
func probeCountry(r *geoip2.Reader) error { return probeKind(r.Country(probeAddr)) }

// probeASN refuses a database without autonomous system records.
func probeASN(r *geoip2.Reader) error { return probeKind(r.ASN(probeAddr)) }

// probeKind keeps a probe's InvalidMethodError (the wrong kind of
// database) and ignores what the lookup found.
func probeKind[T any](_ T, err error) error {
	if _, ok := errors.AsType[geoip2.InvalidMethodError](err); ok {
		return fmt.Errorf("not a database of this kind: %w", err)
	}
	return nil
}
