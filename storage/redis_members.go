package storage

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/idlegate/idlegate/idletrack"
)

// Members and the cookie family in Redis (members.go); the member keys and
// how ends and rotations treat them are described at redisApplyScript.
//
//	<p>{<z>}:m:<member>    string  the session's hex ID, or "*" when shared
//	<p>{<z>}:ms:<id>       hash    the session's members: member -> "at name"
//	<p>{<z>}:family        string  the zone's cookie family, JSON []FamilyMember

// LookupMember implements Store.
func (s *Redis) LookupMember(ctx context.Context, zone string, id idletrack.ID) (_ MemberRecord, err error) {
	defer s.wrap("member lookup", &err)
	if err := s.check(); err != nil {
		return MemberRecord{}, err
	}
	v, err := s.c.Get(ctx, s.base(zone)+"m:"+hexID(id)).Result()
	if errors.Is(err, redis.Nil) {
		return MemberRecord{}, nil
	}
	if err != nil {
		return MemberRecord{}, err
	}
	if v == "*" {
		return MemberRecord{Found: true, Shared: true}, nil
	}
	target, err := parseID(v)
	if err != nil {
		return MemberRecord{}, err
	}
	return MemberRecord{Found: true, Target: target}, nil
}

// LoadFamily implements Store.
func (s *Redis) LoadFamily(ctx context.Context, zone string) (_ []FamilyMember, err error) {
	defer s.wrap("family load", &err)
	if err := s.check(); err != nil {
		return nil, err
	}
	v, err := s.c.Get(ctx, s.base(zone)+"family").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f []FamilyMember
	if err := json.Unmarshal(v, &f); err != nil {
		return nil, err
	}
	return clampFamily(f), nil
}

// SaveFamily implements Store.
func (s *Redis) SaveFamily(ctx context.Context, zone string, f []FamilyMember) (err error) {
	defer s.wrap("family save", &err)
	if err := s.check(); err != nil {
		return err
	}
	v, err := json.Marshal(clampFamily(f))
	if err != nil {
		return err
	}
	return s.c.Set(ctx, s.base(zone)+"family", v, 0).Err()
}
