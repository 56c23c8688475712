package storage

// EndConflicts reports how often s re-read sessions to end because another
// instance had written them since the read.
func EndConflicts(s *Redis) int64 { return s.conflicts.Load() }
