//go:build !unix

package imapd

import "errors"

// openRaw is not offered here: every file goes through Store.OpenMessage.
func openRaw(string) (messageFile, error) { return nil, errors.New("not supported") }
