package storage

import (
	"os"
	"syscall"
)

// fdatasync writes f's data, and its metadata only where reading the data
// needs it (as bbolt syncs on Linux).
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
