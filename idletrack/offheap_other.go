//go:build !unix

package idletrack

// Without mmap, large arrays are ordinary Go memory, and freeing them is
// the collector's job.

func mapAnon(size int) ([]byte, error) { return make([]byte, size), nil }

func unmapAnon([]byte) error { return nil }
