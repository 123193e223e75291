//go:build !unix

package mailstore

import "os"

func openRaw(path string) (MessageReader, error) { return os.Open(path) }
