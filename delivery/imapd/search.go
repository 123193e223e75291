package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// searchNeeds says what the criteria look at beyond UIDs and flags.
type searchNeeds struct{ info, content bool }

func needsOf(c *imap.SearchCriteria) searchNeeds {
	var n searchNeeds
	n.info = !c.Since.IsZero() || !c.Before.IsZero() || c.Larger != 0 || c.Smaller != 0
	n.content = len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero()
	for i := range c.Not {
		m := needsOf(&c.Not[i])
		n.info, n.content = n.info || m.info, n.content || m.content
	}
	for i := range c.Or {
		for j := range c.Or[i] {
			m := needsOf(&c.Or[i][j])
			n.info, n.content = n.info || m.info, n.content || m.content
		}
	}
	n.info = n.info || n.content
	return n
}

// Search implements imapserver.Session. Criteria on UIDs, flags, dates and
// sizes use the snapshot; SUBJECT, FROM, TO, CC, BCC and HEADER on those
// fields use the index's search fields (one query per criterion, see
// mailstore.SearchHeader); other header criteria read each candidate's
// header, text criteria its content, one message at a time. Messages
// expunged meanwhile never match.
func (sess *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	needs := needsOf(criteria)
	idx, err := sess.headerIndex(criteria)
	if err != nil {
		return nil, err
	}
	var seqs rangeBuilder
	var uids rangeBuilder
	data := &imap.SearchData{}
	for i := range sel.uids {
		if sel.isGhost(i) || (needs.info && sel.info[i].blobID == 0) {
			continue
		}
		m := candidate{sess: sess, i: i, idx: idx}
		ok, err := m.match(criteria)
		m.release()
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		seq, uid := uint32(i+1), sel.uids[i]
		seqs.add(seq)
		uids.add(uid)
		num := seq
		if kind == imapserver.NumKindUID {
			num = uid
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
	}
	if kind == imapserver.NumKindUID {
		data.All = uids.uidSet()
	} else {
		data.All = seqs.seqSet()
	}
	if idx != nil && len(idx.blobs) > 0 {
		// Messages stored before the index kept search fields: add
		// them now, so that the next search finds them there.
		ctx, cancel := sess.ctx()
		err := sess.srv.store.IndexHeaders(ctx, idx.blobs)
		cancel()
		if err != nil {
			sess.log.Warn("imap SEARCH: indexing headers failed", "err", err)
		} else {
			sess.log.Info("imap SEARCH indexed older messages' headers", "messages", len(idx.blobs))
		}
	}
	if options.ReturnSave {
		// RFC 5182 §2.1: the saved result is kept as UIDs.
		sel.searchRes = uids.uidSet()
	}
	return data, nil
}

// rangeBuilder collects ascending numbers into ranges.
type rangeBuilder struct{ r [][2]uint32 }

func (b *rangeBuilder) add(n uint32) {
	if k := len(b.r); k > 0 && b.r[k-1][1]+1 == n {
		b.r[k-1][1] = n
		return
	}
	b.r = append(b.r, [2]uint32{n, n})
}

func (b *rangeBuilder) seqSet() imap.SeqSet {
	s := make(imap.SeqSet, len(b.r))
	for i, r := range b.r {
		s[i] = imap.SeqRange{Start: r[0], Stop: r[1]}
	}
	return s
}

func (b *rangeBuilder) uidSet() imap.UIDSet {
	s := make(imap.UIDSet, len(b.r))
	for i, r := range b.r {
		s[i] = imap.UIDRange{Start: imap.UID(r[0]), Stop: imap.UID(r[1])}
	}
	return s
}

// candidate is one message under test; its content is read on first need.
type candidate struct {
	sess   *session
	i      int
	idx    *headerIndex
	loaded bool
	buf    *bytes.Buffer
	header *textproto.Header
	err    error
}

func (m *candidate) release() {
	if m.buf != nil && m.buf.Cap() <= pooledMax {
		wholeBufs.Put(m.buf)
	}
}

// content reads the message once; nil when it is gone.
func (m *candidate) content() ([]byte, error) {
	if !m.loaded {
		m.loaded = true
		sel := m.sess.sel
		f, err := openMessage(m.sess.srv.store, sel.info[m.i])
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			m.err = m.sess.internalError("SEARCH", err)
			return nil, m.err
		}
		defer f.Close()
		m.buf = wholeBufs.Get().(*bytes.Buffer)
		m.buf.Reset()
		if _, err := m.buf.ReadFrom(f); err != nil {
			m.err = m.sess.internalError("SEARCH", err)
		}
	}
	if m.err != nil || m.buf == nil {
		return nil, m.err
	}
	return m.buf.Bytes(), nil
}

func (m *candidate) parsedHeader() (*textproto.Header, error) {
	if m.header == nil {
		var b []byte
		var err error
		if m.loaded {
			b, err = m.content()
		} else {
			b, err = m.headerOnly()
		}
		if err != nil {
			return nil, err
		}
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
		m.header = &h
	}
	return m.header, nil
}

func (m *candidate) match(c *imap.SearchCriteria) (bool, error) {
	sel := m.sess.sel
	seq, uid := uint32(m.i+1), sel.uids[m.i]
	n := uint32(len(sel.uids))
	for _, set := range c.SeqNum {
		if !inSet(seqRanges(set), seq, n) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			set = sel.searchRes
		}
		if !inSet(uidRanges(set), uid, sel.uids[len(sel.uids)-1]) {
			return false, nil
		}
	}
	set := sel.set(m.i)
	for _, f := range c.Flag {
		// \Recent is not kept: no message is recent (RFC 9051 drops it).
		if !set.has(f) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if set.has(f) {
			return false, nil
		}
	}
	if !c.Since.IsZero() || !c.Before.IsZero() {
		if !inDays(time.Unix(sel.info[m.i].date, 0), c.Since, c.Before) {
			return false, nil
		}
	}
	size := int64(0)
	if sel.info != nil {
		size = sel.info[m.i].size
	}
	if (c.Larger != 0 && size <= c.Larger) || (c.Smaller != 0 && size >= c.Smaller) {
		return false, nil
	}
	if len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		for _, hf := range c.Header {
			ok, known := m.idx.match(hf, m.i)
			if !known {
				h, err := m.parsedHeader()
				if err != nil {
					return false, err
				}
				mh := mail.Header{Header: gomessage.Header{Header: *h}}
				ok = matchHeader(mh.FieldsByKey(hf.Key), hf.Value)
			}
			if !ok {
				return false, nil
			}
		}
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			h, err := m.parsedHeader()
			if err != nil {
				return false, err
			}
			mh := mail.Header{Header: gomessage.Header{Header: *h}}
			// RFC 9051 §6.4.4: the Date header, disregarding time and
			// timezone; a message without one does not match.
			date, err := mh.Date()
			if err != nil || date.IsZero() || !inDays(date, c.SentSince, c.SentBefore) {
				return false, nil
			}
		}
	}
	for _, text := range c.Body {
		if ok, err := m.contains(text, false); !ok || err != nil {
			return false, err
		}
	}
	for _, text := range c.Text {
		if ok, err := m.contains(text, true); !ok || err != nil {
			return false, err
		}
	}
	for i := range c.Not {
		ok, err := m.match(&c.Not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		a, err := m.match(&c.Or[i][0])
		if err != nil {
			return false, err
		}
		if a {
			continue
		}
		b, err := m.match(&c.Or[i][1])
		if err != nil || !b {
			return false, err
		}
	}
	return true, nil
}

// contains looks for text, case-insensitively, in the decoded text parts
// of the message (and in its header fields when withHeader: SEARCH TEXT).
func (m *candidate) contains(text string, withHeader bool) (bool, error) {
	b, err := m.content()
	if err != nil || b == nil {
		return false, err
	}
	if text == "" {
		return true, nil
	}
	e, err := gomessage.Read(bytes.NewReader(b))
	if e == nil {
		return false, nil //nolint:nilerr // an unparsable message simply does not match
	}
	_ = err // unknown charsets and encodings leave the body as it is
	return matchEntity(e, []byte(strings.ToLower(text)), withHeader, 0), nil
}

// maxSearchDepth bounds the MIME nesting a search walks into.
const maxSearchDepth = 32

func matchEntity(e *gomessage.Entity, lower []byte, withHeader bool, depth int) bool {
	if withHeader {
		for f := e.Header.Fields(); f.Next(); {
			v, err := f.Text()
			if err != nil {
				v = f.Value()
			}
			if bytes.Contains(bytes.ToLower([]byte(v)), lower) {
				return true
			}
		}
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth >= maxSearchDepth {
			return false
		}
		for {
			part, err := mr.NextPart()
			if err == io.EOF || (err != nil && part == nil) {
				return false
			}
			if matchEntity(part, lower, withHeader, depth+1) {
				return true
			}
		}
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && !strings.HasPrefix(t, "message/") {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(e.Body, 64<<20))
	if err != nil && len(body) == 0 {
		return false
	}
	return bytes.Contains(bytes.ToLower(body), lower)
}

func matchHeader(fields gomessage.HeaderFields, value string) bool {
	if value == "" {
		return fields.Len() > 0 // RFC 9051 §6.4.4: HEADER with "" matches any such field
	}
	lower := strings.ToLower(value)
	for fields.Next() {
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		if strings.Contains(strings.ToLower(v), lower) {
			return true
		}
	}
	return false
}

// inDays compares the calendar day of t (in its own zone) with since
// (inclusive) and before (exclusive), which go-imap gives as UTC midnights.
func inDays(t, since, before time.Time) bool {
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && day.Before(since) {
		return false
	}
	if !before.IsZero() && !day.Before(before) {
		return false
	}
	return true
}

func seqRanges(s imap.SeqSet) [][2]uint32 {
	out := make([][2]uint32, len(s))
	for i, r := range s {
		out[i] = [2]uint32{r.Start, r.Stop}
	}
	return out
}

func uidRanges(s imap.UIDSet) [][2]uint32 {
	out := make([][2]uint32, len(s))
	for i, r := range s {
		out[i] = [2]uint32{uint32(r.Start), uint32(r.Stop)}
	}
	return out
}

// inSet tests n against ranges in which 0 stands for "*", the top value.
func inSet(ranges [][2]uint32, n, top uint32) bool {
	for _, r := range ranges {
		start, stop := dynamic(r[0], top), dynamic(r[1], top)
		if start > stop {
			start, stop = stop, start
		}
		if n >= start && n <= stop {
			return true
		}
	}
	return false
}

// headerOnly reads the header block of the message (for header criteria
// the index cannot answer); nil when it is gone.
func (m *candidate) headerOnly() ([]byte, error) {
	f, err := openMessage(m.sess.srv.store, m.sess.sel.info[m.i])
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, m.sess.internalError("SEARCH", err)
	}
	defer f.Close()
	b, err := readHeader(f)
	if err != nil {
		return nil, m.sess.internalError("SEARCH", err)
	}
	return b, nil
}
