package imapd

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/moatmail/moat/delivery"
)

// messageFile is an open message: read whole, or in ranges.
type messageFile interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

// blobFiles opens message files for FETCH and SEARCH.
//
// Store.OpenMessage uses os.Open, which on Linux tries to register every
// regular file with the network poller: four fcntl and epoll_ctl calls
// that fail or undo each other, about half of the server's CPU time in a
// FETCH of small messages. Until the store opens files more cheaply (see
// the report that came with this package), this learns the folder of the
// message files from a file OpenMessage returned, checks that its name is
// folder/key[:2]/key, and from then on opens files there with a bare
// open(2) (open, pread, close). Anything unexpected (a name of another
// shape, a key that is not lower-case hex, a file not found) goes through
// OpenMessage, whose answer stands.
type blobFiles struct {
	dir atomic.Pointer[string]
}

func (b *blobFiles) open(store *delivery.Store, key string) (messageFile, error) {
	if dir := b.dir.Load(); dir != nil && validKey(key) {
		if f, err := openRaw(filepath.Join(*dir, key[:2], key)); err == nil {
			return f, nil
		}
	}
	f, err := store.OpenMessage(delivery.Message{BlobKey: key})
	if err != nil {
		return nil, err
	}
	osf, ok := f.(*os.File)
	if !ok {
		f.Close()
		return nil, errors.New("message is not a file")
	}
	if b.dir.Load() == nil && validKey(key) {
		suffix := string(filepath.Separator) + filepath.Join(key[:2], key)
		if name := osf.Name(); strings.HasSuffix(name, suffix) {
			dir := strings.TrimSuffix(name, suffix)
			b.dir.Store(&dir)
		}
	}
	return osf, nil
}

// validKey accepts the store's blob keys: lower-case hex, long enough to
// have a two-character folder.
func validKey(key string) bool {
	if len(key) < 3 {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
