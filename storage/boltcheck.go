package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"syscall"
)

// checkBoltFile checks a bbolt file before bbolt maps it, for the damage
// bbolt cannot survive:
//
//   - A truncated file: reading a mapped page past the end of the file is
//     a SIGBUS. The meta page bbolt will use records the page size and the
//     high-water page ID; the file must be at least that long.
//   - A damaged page: bbolt opens with NoFreelistSync (see OpenBolt), so it
//     rebuilds the freelist at open by a walk of every page that runs in a
//     goroutine of its own without recover; a damaged page there is a panic
//     no caller can catch, and a page that points back up the tree a stack
//     overflow. This walk checks first what that one assumes: that every
//     page a branch or a bucket points to lies below the high-water mark,
//     says it is that page, is a branch or leaf page, holds its elements
//     inside itself, and is reached only once; and that the keys of each
//     bucket's tree are in order, as that walk checks them too: it reports
//     such damage by a panic on the opening goroutine, which a recover
//     catches, but its deferred rollback then pulls the transaction from
//     under the walk, still running, which crashes (a test caught it).
//     Values are not read.
//
// It runs where OpenBolt turns a fault or a panic into the "damaged file"
// error. Files that are not bbolt files at all are left to bbolt's checks.
// rebuilds reports whether bbolt will rebuild the file's freelist when it
// opens it (the file records none): its walk is then the consistency
// check.
func checkBoltFile(path string) (rebuilds bool, err error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return false, err
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return false, err
	}
	defer syscall.Munmap(data)
	m, ok := pickMeta(data)
	if !ok {
		return false, nil
	}
	w := pageWalk{data: data, size: uint64(m.pageSize), hwm: m.pgid, seen: make([]uint64, m.pgid/64+1)}
	if need := w.hwm * w.size; uint64(len(data)) < need {
		return false, fmt.Errorf("the file is truncated: %d bytes, its last transaction needs %d", len(data), need)
	}
	return m.freelist == noFreelist, w.bucket(m.root, "root")
}

// noFreelist is the freelist page ID of a file that records none.
const noFreelist = 1<<64 - 1

type boltMeta struct {
	pageSize             uint32
	root, freelist, pgid uint64
	txid                 uint64
}

// pickMeta returns the meta page bbolt uses: of the two, the one with the
// higher transaction ID that is valid (magic, version 2, checksum), else
// the other one if valid. Page header: id u64, flags u16, count u16,
// overflow u32 (16 bytes); then meta: magic u32, version u32, pageSize
// u32, flags u32, root (u64, u64), freelist u64, pgid u64, txid u64,
// checksum u64 (FNV-1a of the meta before it).
func pickMeta(data []byte) (boltMeta, bool) {
	read := func(off int) (boltMeta, bool) {
		if off < 0 || off+80 > len(data) {
			return boltMeta{}, false
		}
		b := data[off : off+80]
		le := binary.LittleEndian
		if le.Uint32(b[16:]) != 0xED0CDAED || le.Uint32(b[20:]) != 2 {
			return boltMeta{}, false
		}
		h := fnv.New64a()
		h.Write(b[16:72])
		if h.Sum64() != le.Uint64(b[72:]) {
			return boltMeta{}, false
		}
		m := boltMeta{pageSize: le.Uint32(b[24:]), root: le.Uint64(b[32:]), freelist: le.Uint64(b[48:]), pgid: le.Uint64(b[56:]), txid: le.Uint64(b[64:])}
		return m, m.pageSize >= 1024 && m.pageSize <= 1<<20 && m.pgid >= 2
	}
	// Meta 1 is the second page: at meta 0's page size, or, if meta 0 is
	// the damaged one, at whichever common size holds a meta saying so.
	m0, ok0 := read(0)
	var m1 boltMeta
	ok1 := false
	for _, size := range []uint32{4096, 8192, 1024, 2048, 16384, 32768, 65536} {
		if ok0 && size != m0.pageSize {
			continue
		}
		if m, ok := read(int(size)); ok && m.pageSize == size {
			m1, ok1 = m, true
			break
		}
	}
	switch {
	case ok0 && ok1:
		if m1.txid > m0.txid {
			return m1, true
		}
		return m0, true
	case ok0:
		return m0, true
	default:
		return m1, ok1
	}
}

type pageWalk struct {
	data      []byte
	size, hwm uint64
	seen      []uint64 // pages reached, one bit each
}

const (
	pageHeader   = 16
	elemSize     = 16
	branchPage   = 0x01
	leafPage     = 0x02
	bucketLeaf   = 0x01
	bucketHeader = 16
)

func pageErr(id uint64, in, what string, args ...any) error {
	return fmt.Errorf("page %d (in %s): "+what, append([]any{id, in}, args...)...)
}

// bucket walks the tree of a bucket whose root page is root (0: inline,
// already walked by the caller).
func (w *pageWalk) bucket(root uint64, in string) error {
	if root == 0 {
		return nil
	}
	_, err := w.page(root, in, 0, nil, nil)
	return err
}

// keyOrder checks the key of element i of page id against the keys around
// it, as bbolt's walk does: prev is the key before it (the last key of the
// subtree before, the parent's bound for the first one; nil: none), hi the
// parent's next key (nil: none).
func keyOrder(id uint64, in string, i int, key, prev, hi []byte) error {
	if prev != nil && (bytes.Compare(prev, key) > 0 || i > 0 && bytes.Equal(prev, key)) ||
		hi != nil && bytes.Compare(key, hi) >= 0 {
		return pageErr(id, in, "key %d out of order", i)
	}
	return nil
}

// page checks page id, whose keys must lie in [lo, hi) (nil: unbounded),
// and walks what it points to. It returns the last key under it.
func (w *pageWalk) page(id uint64, in string, depth int, lo, hi []byte) ([]byte, error) {
	if depth > 64 {
		return nil, pageErr(id, in, "the tree is deeper than 64 levels")
	}
	if id < 2 || id >= w.hwm {
		return nil, pageErr(id, in, "out of range [2, %d)", w.hwm)
	}
	off := id * w.size
	le := binary.LittleEndian
	h := w.data[off : off+pageHeader]
	overflow := uint64(le.Uint32(h[12:]))
	if id+overflow >= w.hwm {
		return nil, pageErr(id, in, "%d overflow pages run past the last page %d", overflow, w.hwm-1)
	}
	if got := le.Uint64(h); got != id {
		return nil, pageErr(id, in, "the page says it is page %d", got)
	}
	for p := id; p <= id+overflow; p++ {
		if w.seen[p/64]&(1<<(p%64)) != 0 {
			return nil, pageErr(p, in, "reached twice")
		}
		w.seen[p/64] |= 1 << (p % 64)
	}
	pg := w.data[off : off+(overflow+1)*w.size]
	flags, count := le.Uint16(h[8:]), int(le.Uint16(h[10:]))
	switch flags {
	case branchPage:
		if err := w.elements(pg, count, id, in); err != nil {
			return nil, err
		}
		key := func(i int) []byte {
			e := pg[pageHeader+i*elemSize:]
			pos := pageHeader + i*elemSize + int(le.Uint32(e[0:]))
			return pg[pos : pos+int(le.Uint32(e[4:]))]
		}
		prev, last := lo, []byte(nil)
		for i := range count {
			k := key(i)
			if err := keyOrder(id, in, i, k, prev, hi); err != nil {
				return nil, err
			}
			next := hi
			if i < count-1 {
				next = key(i + 1)
			}
			e := pg[pageHeader+i*elemSize:]
			var err error
			if last, err = w.page(le.Uint64(e[8:]), in, depth+1, k, next); err != nil {
				return nil, err
			}
			prev = last
		}
		return last, nil
	case leafPage:
		return w.leaf(pg, count, id, in, depth, lo, hi)
	default:
		return nil, pageErr(id, in, "neither a branch nor a leaf page (flags %#x)", flags)
	}
}

// elements checks that a branch page's count elements and their keys lie
// in pg (a leaf checks its own as it walks them).
func (w *pageWalk) elements(pg []byte, count int, id uint64, in string) error {
	le := binary.LittleEndian
	if pageHeader+count*elemSize > len(pg) {
		return pageErr(id, in, "%d elements do not fit in %d bytes", count, len(pg))
	}
	for i := range count {
		at := pageHeader + i*elemSize
		e := pg[at:]
		if uint64(at)+uint64(le.Uint32(e[0:]))+uint64(le.Uint32(e[4:])) > uint64(len(pg)) {
			return pageErr(id, in, "element %d runs past the page", i)
		}
	}
	return nil
}

// leaf checks a leaf page (or an inline bucket's page, pg being the
// bucket's value past its header) and walks the buckets it holds. It
// returns its last key.
func (w *pageWalk) leaf(pg []byte, count int, id uint64, in string, depth int, lo, hi []byte) ([]byte, error) {
	if pageHeader+count*elemSize > len(pg) {
		return nil, pageErr(id, in, "%d elements do not fit in %d bytes", count, len(pg))
	}
	le := binary.LittleEndian
	var last []byte
	for i := range count {
		at := pageHeader + i*elemSize
		e := pg[at:]
		pos, ks, vs := uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		if uint64(at)+pos+ks+vs > uint64(len(pg)) {
			return nil, pageErr(id, in, "element %d runs past the page", i)
		}
		key := pg[uint64(at)+pos : uint64(at)+pos+ks]
		// As keyOrder, one comparison a key: in a page in order, the
		// first key alone needs the lower bound and the last the upper.
		if i == 0 && lo != nil && bytes.Compare(lo, key) > 0 || i > 0 && bytes.Compare(last, key) >= 0 ||
			i == count-1 && hi != nil && bytes.Compare(key, hi) >= 0 {
			return nil, pageErr(id, in, "key %d out of order", i)
		}
		last = key
		if le.Uint32(e)&bucketLeaf == 0 {
			continue
		}
		v := pg[uint64(at)+pos+ks : uint64(at)+pos+ks+vs]
		if len(v) < bucketHeader {
			return nil, pageErr(id, in, "bucket %q: a value of %d bytes", key, len(v))
		}
		name := fmt.Sprintf("%s/%q", in, key)
		if root := le.Uint64(v); root != 0 {
			if _, err := w.page(root, name, depth+1, nil, nil); err != nil {
				return nil, err
			}
			continue
		}
		// An inline bucket: a leaf page inside the value.
		ip := v[bucketHeader:]
		if len(ip) < pageHeader {
			return nil, pageErr(id, name, "inline bucket of %d bytes", len(ip))
		}
		if f := le.Uint16(ip[8:]); f != leafPage {
			return nil, pageErr(id, name, "inline bucket is not a leaf page (flags %#x)", f)
		}
		if depth > 64 { // each nested one lies in its parent's value: it ends
			return nil, pageErr(id, name, "inline buckets nested deeper than 64 levels")
		}
		if _, err := w.leaf(ip, int(le.Uint16(ip[10:])), id, name, depth+1, nil, nil); err != nil {
			return nil, err
		}
	}
	return last, nil
}
