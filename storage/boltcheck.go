package storage

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// checkBoltFile catches a truncated bbolt file before bbolt maps it: reading
// a mapped page past the end of the file is a SIGBUS, which no recover can
// catch. bbolt's two meta pages record the page size and the high-water page
// id; the file must be at least that long. Files that are not bbolt files at
// all are left to bbolt's own checks.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	// Page header: id u64, flags u16, count u16, overflow u32 (16 bytes);
	// then meta: magic u32, version u32, pageSize u32, flags u32,
	// root (u64, u64), freelist u64, pgid u64, txid u64, checksum u64.
	const magic = 0xED0CDAED
	readMeta := func(off int64) (pageSize uint32, pgid, txid uint64, ok bool) {
		var b [80]byte
		if _, err := f.ReadAt(b[:], off); err != nil && err != io.EOF {
			return 0, 0, 0, false
		}
		le := binary.LittleEndian
		if le.Uint32(b[16:]) != magic {
			return 0, 0, 0, false
		}
		return le.Uint32(b[24:]), le.Uint64(b[56:]), le.Uint64(b[64:]), true
	}
	ps, pgid, txid, ok0 := readMeta(0)
	if !ok0 {
		return nil
	}
	if ps1, pgid1, txid1, ok1 := readMeta(int64(ps)); ok1 && txid1 > txid && ps1 == ps {
		pgid = pgid1
	}
	if need := int64(pgid) * int64(ps); fi.Size() < need {
		return fmt.Errorf("the file is truncated: %d bytes, its last transaction needs %d", fi.Size(), need)
	}
	return nil
}
