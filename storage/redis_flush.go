package storage

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// The engine's periodic flush writes hundreds of activity-only session
// writes at a time. As script arguments of their own (op S), each costs
// nine arguments boxed into interfaces, formatted and framed by the Redis
// client, and the allocations a Caddy process then marks in every
// collection; op A carries a run of them in one argument instead, packed
// into a buffer that is reused from flush to flush.

// redisActEntry is the struct.unpack format of one op A entry (the Lua
// script's ENTRY): the hex ID; st, li, la, rq and delta as a length byte
// and decimal digits; u as a 4-byte little-endian length and its bytes.
const redisActEntry = "<c32Bc0Bc0Bc0Bc0Bc0I4c0"

// redisScratch holds the buffers of one Apply, kept for the next.
type redisScratch struct {
	order  []int32 // indexes of one zone's session writes
	packed []byte  // op A arguments of one script
	args   []any
}

// redisScratchKeep bounds the packed buffer kept between flushes.
const redisScratchKeep = 1 << 20

// scratch returns the store's buffers, or fresh ones while another Apply
// holds them.
func (s *Redis) scratch() *redisScratch {
	if s.scratchMu.TryLock() {
		return &s.sc
	}
	return &redisScratch{}
}

func (s *Redis) release(sc *redisScratch) {
	if sc != &s.sc {
		return
	}
	if cap(sc.packed) > redisScratchKeep {
		sc.packed = nil
	}
	s.scratchMu.Unlock()
}

// redisMinTTLArg is ARGV[1], boxed once.
var redisMinTTLArg any = MinKeyTTL.Milliseconds()

// applySessions writes the session writes ws[i] of one zone, i in idx, in
// one script: runs of activity-only writes as op A, the others as op S,
// in batch order.
func (s *Redis) applySessions(ctx context.Context, base, zone string, ws []SessionWrite, idx []int32, sc *redisScratch) error {
	args := append(sc.args[:0], redisMinTTLArg, s.redisInvalChannel(), s.consumer, zone)
	packed := sc.packed[:0]
	runStart := -1 // where the current run of op A entries starts in packed
	endRun := func() {
		if runStart >= 0 {
			args = append(args, "A", packed[runStart:len(packed):len(packed)])
			runStart = -1
		}
	}
	for _, i := range idx {
		w := &ws[i]
		ss := &w.Session
		if !w.ActivityOnly || s.noPack || uint64(len(ss.User)) > 1<<32-1 {
			endRun()
			args = append(args, "S", hexID(ss.ID), ss.StartedAt, ss.LoginAt, ss.LastActivity, ss.Requests, w.ReqDelta, ss.User, b01(w.ActivityOnly))
			continue
		}
		if runStart < 0 {
			runStart = len(packed)
		}
		packed = appendActEntry(packed, w)
	}
	endRun()
	sc.packed = packed
	err := redisApplyScript.Run(ctx, s.c, []string{base}, args...).Err()
	clear(args)
	sc.args = args[:0]
	return err
}

// appendActEntry appends w's op A entry (redisActEntry) to p.
func appendActEntry(p []byte, w *SessionWrite) []byte {
	ss := &w.Session
	n := len(p)
	p = append(p, make([]byte, 2*len(ss.ID))...)
	hex.Encode(p[n:], ss.ID[:])
	p = appendDec(p, ss.StartedAt)
	p = appendDec(p, ss.LoginAt)
	p = appendDec(p, ss.LastActivity)
	p = appendDec(p, int64(ss.Requests))
	p = appendDec(p, int64(w.ReqDelta))
	p = binary.LittleEndian.AppendUint32(p, uint32(len(ss.User)))
	return append(p, ss.User...)
}

// appendDec appends v's decimal digits (as the S op's arguments have them)
// after a length byte.
func appendDec(p []byte, v int64) []byte {
	n := len(p)
	p = strconv.AppendInt(append(p, 0), v, 10)
	p[n] = byte(len(p) - n - 1)
	return p
}
