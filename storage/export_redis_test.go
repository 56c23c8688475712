package storage

import "context"

// SetRedisPacking makes s write activity-only session writes packed (op A,
// the default) or one op S each (on false), as before op A.
func SetRedisPacking(s *Redis, on bool) { s.noPack = !on }

// RunRedisApply runs the apply script for zone with ops after its four
// leading arguments.
func RunRedisApply(s *Redis, zone string, ops ...any) error {
	args := append([]any{redisMinTTLArg, s.redisInvalChannel(), s.consumer, zone}, ops...)
	return redisApplyScript.Run(context.Background(), s.c, []string{s.base(zone)}, args...).Err()
}

// RedisActEntry is w's op A entry.
func RedisActEntry(w SessionWrite) []byte { return appendActEntry(nil, &w) }
