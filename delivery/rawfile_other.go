//go:build !unix

package delivery

import "os"

func openRaw(path string) (MessageReader, error) { return os.Open(path) }
