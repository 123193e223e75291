package imapd

import (
	"io"

	"github.com/moatmail/moat/delivery/mailstore"
)

// messageFile is an open message: read whole, or in ranges.
type messageFile interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

// openMessage opens a message for FETCH and SEARCH. A message expunged
// meanwhile answers an error that wraps fs.ErrNotExist.
func openMessage(store *mailstore.Store, info msgInfo) (messageFile, error) {
	return store.OpenMessage(mailstore.Message{BlobID: info.blobID, BlobKey: info.key})
}
