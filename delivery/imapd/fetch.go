package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/moatmail/moat/delivery/mailstore"
)

// Buffers shared by all connections (no connection holds a large buffer of
// its own): copy buffers for streaming message files into literals, and
// whole-message buffers for items that need parsing. Buffers that grew
// beyond pooledMax are left to the collector.
var (
	copyBufs   = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
	wholeBufs  = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	headerBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
)

const pooledMax = 1 << 20

var errExpungeIssued = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: "EXPUNGEISSUED", // RFC 9051 §7.1
	Text: "Some messages were expunged meanwhile",
}

// fetchPlan says what a FETCH needs from each message, so that its file is
// opened at most once and read at most once.
type fetchPlan struct {
	markSeen bool // a non-PEEK body section: RFC 9051 §6.4.5 sets \Seen
	info     bool // key, size or date
	file     bool // the message content
	whole    bool // the whole content in memory (parsed items)
	header   bool // the header only
}

func planFetch(o *imap.FetchOptions) fetchPlan {
	var p fetchPlan
	streams := 0
	for _, bs := range o.BodySection {
		p.markSeen = p.markSeen || !bs.Peek
		switch {
		case isFull(bs):
			streams++
		case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader:
			p.header = true
		default:
			p.whole = true
		}
	}
	for _, bs := range o.BinarySection {
		p.markSeen = p.markSeen || !bs.Peek
		p.whole = true
	}
	if len(o.BinarySectionSize) > 0 || o.BodyStructure != nil {
		p.whole = true
	}
	if o.Envelope {
		p.header = true
	}
	// Stream BODY[] straight from the file when it is the only content
	// asked for; otherwise read the file once.
	if streams > 1 || (streams == 1 && p.header) {
		p.whole = true
	}
	if p.whole {
		p.header = false
	}
	p.file = p.whole || p.header || streams > 0
	p.info = p.file || o.InternalDate || o.RFC822Size
	return p
}

// isFull reports whether a section is the whole message, BODY[] or
// BODY[]<partial>, which is served byte for byte from the file.
func isFull(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone &&
		len(bs.HeaderFields) == 0 && len(bs.HeaderFieldsNot) == 0
}

// Fetch implements imapserver.Session.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	positions, err := sel.resolve(numSet)
	if err != nil {
		return err
	}
	plan := planFetch(options)
	var flagged map[int]bool
	if plan.markSeen && !sel.readOnly {
		if flagged, err = sess.markSeen(positions); err != nil {
			return err
		}
	}
	sess.cork.cork()
	defer sess.cork.uncork()
	var batch *mailstore.MessageBatch
	defer func() { batch.Release() }()
	issued := false
	for k, i := range positions {
		if sel.isGhost(i) || (plan.info && sel.info[i].blobID == 0) {
			issued = true
			continue
		}
		var inline []byte
		mem := false
		if plan.file && sel.info[i].key == "" {
			uid := sel.uids[i]
			if !batch.Covers(uid) {
				batch.Release()
				if batch, err = sess.readBatch(positions[k:]); err != nil {
					return err
				}
			}
			// Not in the batch: expunged meanwhile, or in a file the
			// listing has no key of (mailstore.Entry.BlobKey), which
			// fetchOne opens from its blob.
			inline, mem = batch.Message(uid)
		}
		ok, err := sess.fetchOne(w, i, options, plan, flagged[i], inline, mem)
		if err != nil {
			return err
		}
		issued = issued || !ok
	}
	if issued {
		return errExpungeIssued
	}
	return nil
}

// markSeen sets \Seen on the messages at positions that lack it, before
// their FETCH responses are written, and returns the positions changed:
// their FLAGS go into the response (RFC 9051 §6.4.5).
func (sess *session) markSeen(positions []int) (map[int]bool, error) {
	sel := sess.sel
	var uids []uint32
	for _, i := range positions {
		if !sel.isGhost(i) && !sel.set(i).seen {
			uids = append(uids, sel.uids[i])
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	ctx, cancel := sess.ctx()
	defer cancel()
	msgs, err := sess.srv.store.StoreFlags(ctx, sel.mb.ID, uids, mailstore.FlagsAdd, []string{string(imap.FlagSeen)})
	if err != nil {
		return nil, sess.internalError("FETCH", err)
	}
	changed := make(map[int]bool, len(msgs))
	sel.own()
	for _, m := range msgs {
		if i := sel.indexOf(m.UID); i >= 0 {
			sel.flags[i] = sel.table.intern(m.Flags)
			changed[i] = true
		}
	}
	return changed, nil
}

// Batches of inline messages that one FETCH reads with one query: up to
// batchMessages messages in a row of the snapshot, up to batchBytes of
// content (at least one message). Held only while the FETCH runs.
const (
	batchMessages = 256
	batchBytes    = 256 << 10
)

// readBatch reads the inline messages at the start of positions that follow
// each other in the snapshot: their UIDs form a range that holds no other
// message.
func (sess *session) readBatch(positions []int) (*mailstore.MessageBatch, error) {
	sel := sess.sel
	end, size := 0, int64(0)
	for end < len(positions) && end < batchMessages {
		i := positions[end]
		if end > 0 && i != positions[end-1]+1 {
			break
		}
		if info := sel.info[i]; info.blobID != 0 && info.key == "" {
			if end > 0 && size+info.size > batchBytes {
				break
			}
			size += info.size
		}
		end++
	}
	ctx, cancel := sess.ctx()
	defer cancel()
	first, last := sel.uids[positions[0]], sel.uids[positions[end-1]]
	b, err := sess.srv.store.ReadBatch(ctx, sel.mb.ID, first, last, int(size))
	if err != nil {
		return nil, sess.internalError("FETCH", err)
	}
	return b, nil
}

// content is what was read of one message: the whole of an inline message
// (mem), or what was read of its file.
type content struct {
	mem    bool
	inline []byte // the message when mem; it belongs to the batch
	f      messageFile
	whole  *bytes.Buffer
	header []byte
}

func (c *content) data() []byte {
	switch {
	case c.mem:
		return c.inline
	case c.whole != nil:
		return c.whole.Bytes()
	}
	return c.header
}

func (c *content) release() {
	if c.f != nil {
		c.f.Close()
	}
	if c.whole != nil && c.whole.Cap() <= pooledMax {
		wholeBufs.Put(c.whole)
	}
}

// fetchOne writes the FETCH response of the message at position i. An
// inline message comes read already (mem: inline, from a batch); any
// other is read here. It returns false when the message is gone (expunged
// meanwhile).
func (sess *session) fetchOne(w *imapserver.FetchWriter, i int, o *imap.FetchOptions, plan fetchPlan, flagsChanged bool, inline []byte, mem bool) (bool, error) {
	sel := sess.sel
	var info msgInfo
	if plan.info {
		info = sel.info[i]
	}
	var c content
	defer c.release()
	if plan.file && mem {
		// Everything of an inline message is in memory: parsed
		// items use it as is, BODY[] is written from it.
		c.mem, c.inline = true, inline
	} else if plan.file {
		f, err := openMessage(sess.srv.store, info)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, sess.internalError("FETCH", err)
		}
		c.f = f
		switch {
		case plan.whole:
			c.whole = wholeBufs.Get().(*bytes.Buffer)
			c.whole.Reset()
			c.whole.Grow(int(info.size) + bytes.MinRead)
			_, err = c.whole.ReadFrom(f)
		case plan.header:
			c.header, err = readHeader(f)
		}
		if err != nil {
			return false, sess.internalError("FETCH", err)
		}
	}

	rw := w.CreateMessage(uint32(i + 1))
	if o.UID {
		rw.WriteUID(imap.UID(sel.uids[i]))
	}
	if o.Flags || flagsChanged {
		rw.WriteFlags(sel.set(i).flags)
	}
	if o.InternalDate {
		rw.WriteInternalDate(time.Unix(info.date, 0))
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(info.size)
	}
	if o.Envelope {
		rw.WriteEnvelope(envelope(c.data()))
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(sanitizeBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(c.data()))))
	}
	for _, bs := range o.BodySection {
		var err error
		switch {
		case isFull(bs) && !c.mem && c.whole == nil:
			err = streamFull(rw, bs, c.f, info.size)
		case isFull(bs):
			b := c.data()
			off, n := partialRange(int64(len(b)), bs.Partial)
			err = writeLiteral(rw.WriteBodySection(bs, n), b[off:off+n])
		default:
			b := imapserver.ExtractBodySection(bytes.NewReader(c.data()), bs)
			err = writeLiteral(rw.WriteBodySection(bs, int64(len(b))), b)
		}
		if err != nil {
			// A literal cut short leaves the client unable to parse
			// what follows: drop the connection.
			sess.conn.NetConn().Close()
			return false, err
		}
	}
	for _, bs := range o.BinarySection {
		b := imapserver.ExtractBinarySection(bytes.NewReader(c.data()), bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(b))), b); err != nil {
			sess.conn.NetConn().Close()
			return false, err
		}
	}
	for _, bs := range o.BinarySectionSize {
		rw.WriteBinarySectionSize(bs, imapserver.ExtractBinarySectionSize(bytes.NewReader(c.data()), bs))
	}
	return true, rw.Close()
}

// streamFull copies BODY[] (or a partial range of it) from the message file
// into the literal through a shared buffer. The size comes from the index
// (blob files are written whole before the index refers to them); a file
// that turns out shorter fails the copy, and the caller drops the
// connection.
func streamFull(rw *imapserver.FetchResponseWriter, bs *imap.FetchItemBodySection, file messageFile, size int64) error {
	off, n := partialRange(size, bs.Partial)
	lw := rw.WriteBodySection(bs, n)
	bufp := copyBufs.Get().(*[]byte)
	// A SectionReader has no WriteTo, so CopyBuffer uses our buffer
	// instead of allocating one per message.
	_, err := io.CopyBuffer(lw, io.NewSectionReader(file, off, n), *bufp)
	copyBufs.Put(bufp)
	return errors.Join(err, lw.Close())
}

func writeLiteral(lw io.WriteCloser, b []byte) error {
	_, err := lw.Write(b)
	return errors.Join(err, lw.Close())
}

// partialRange applies a <offset.size> partial (RFC 9051 §6.4.5) to a
// length: an offset beyond the end gives an empty string.
func partialRange(size int64, p *imap.SectionPartial) (off, n int64) {
	if p == nil {
		return 0, size
	}
	if p.Offset >= size || p.Offset < 0 {
		return 0, 0
	}
	return p.Offset, min(p.Size, size-p.Offset)
}

// readHeader reads the header block of a message, up to and including the
// empty line that ends it.
func readHeader(r io.Reader) ([]byte, error) {
	br := headerBufs.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil)
		headerBufs.Put(br)
	}()
	var out []byte
	lineStart := true
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			lineStart = false
			continue
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if lineStart && (len(chunk) == 1 || (len(chunk) == 2 && chunk[0] == '\r')) {
			return out, nil
		}
		lineStart = true
	}
}

func envelope(data []byte) *imap.Envelope {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(data)))
	if err != nil && h.Len() == 0 {
		return nil
	}
	return imapserver.ExtractEnvelope(h)
}

// sanitizeBodyStructure replaces what go-imap cannot write: a multipart
// with no parts makes its encoder panic, and any user can be sent such a
// message.
func sanitizeBodyStructure(bs imap.BodyStructure) imap.BodyStructure {
	switch b := bs.(type) {
	case *imap.BodyStructureMultiPart:
		if len(b.Children) == 0 {
			return &imap.BodyStructureSinglePart{
				Type: "text", Subtype: "plain",
				Text:     &imap.BodyStructureText{},
				Extended: &imap.BodyStructureSinglePartExt{},
			}
		}
		for i, c := range b.Children {
			b.Children[i] = sanitizeBodyStructure(c)
		}
		if b.Extended == nil {
			b.Extended = &imap.BodyStructureMultiPartExt{}
		}
	case *imap.BodyStructureSinglePart:
		if b.MessageRFC822 != nil && b.MessageRFC822.BodyStructure != nil {
			b.MessageRFC822.BodyStructure = sanitizeBodyStructure(b.MessageRFC822.BodyStructure)
		}
		if b.Extended == nil {
			b.Extended = &imap.BodyStructureSinglePartExt{}
		}
	}
	return bs
}
