package idletrack

import "time"

// Reason says why a session ended.
type Reason string

// End reasons, as they appear in webhooks, logs and metrics.
const (
	ReasonIdle     Reason = "idle"     // no activity for the idle timeout
	ReasonAbsolute Reason = "absolute" // older than the absolute lifetime
	ReasonLogout   Reason = "logout"   // a logout request, the upstream deleting the cookie, or the user cleared on rotation
	ReasonRevoked  Reason = "revoked"  // the admin API
)

// Session is what idlegate knows about one session. Times are Unix
// nanoseconds from the injected clock, which keeps the struct small: memory
// per tracked session is a published figure.
type Session struct {
	ID           ID
	User         string // empty until the upstream names a user
	StartedAt    int64  // first seen (upstream Set-Cookie or adoption)
	LoginAt      int64  // when User was first set; 0 while anonymous
	LastActivity int64  // last request that counted as activity
	Requests     uint32 // requests that counted as activity
}

// OnlineSince is the start of the online time: the login when a user is
// known, otherwise the start of the session.
func (s *Session) OnlineSince() int64 {
	if s.LoginAt != 0 {
		return s.LoginAt
	}
	return s.StartedAt
}

// Deadline returns when the session expires under p and for which reason.
// The earlier of the idle and absolute deadlines wins.
func (s *Session) Deadline(p *Policy) (int64, Reason) {
	return deadlineOf(s.StartedAt, s.LastActivity, p)
}

func deadlineOf(started, last int64, p *Policy) (int64, Reason) {
	at, why := last+int64(p.Idle), ReasonIdle
	if p.Absolute > 0 {
		if abs := started + int64(p.Absolute); abs <= at {
			at, why = abs, ReasonAbsolute
		}
	}
	return at, why
}

// Policy holds the lifecycle settings of a zone. A Tracker applies the policy
// it is given now to every session, including those started under an older
// one: a reload that changes the idle timeout moves every deadline.
type Policy struct {
	Idle          time.Duration // end after this long without activity; must be > 0
	Absolute      time.Duration // end this long after the start; 0 = off
	RotationGrace time.Duration // a rotated-away cookie value still works this long
	RememberEnded time.Duration // ended IDs are refused this long
	MaxSessions   int           // bound on established sessions
	MaxProbation  int           // bound on adopted, unconfirmed sessions; 0 = MaxSessions/8 (at least 1024)
}

// DefaultPolicy returns the defaults of DESIGN.md.
func DefaultPolicy() Policy {
	return Policy{
		Idle:          30 * time.Minute,
		RotationGrace: 30 * time.Second,
		RememberEnded: 14 * 24 * time.Hour,
		MaxSessions:   1_000_000,
	}
}

func (p *Policy) probationCap() int {
	if p.MaxProbation > 0 {
		return p.MaxProbation
	}
	return max(1024, p.MaxSessions/8)
}

// End is a session that ended, with everything a webhook or log line says
// about it. It is produced exactly once per session.
type End struct {
	Session Session
	Zone    string
	Reason  Reason
	EndedAt int64 // for idle and absolute: the deadline, not the moment the sweeper noticed
	// Adopted: the session was adopted from a cookie value idlegate had
	// never seen, and the upstream never issued or rotated it (memory
	// only: sessions loaded from the store count as issued).
	Adopted bool
}

// DurationSeconds is the online time: from OnlineSince to the last activity.
func (e *End) DurationSeconds() int64 {
	d := e.Session.LastActivity - e.Session.OnlineSince()
	if d < 0 {
		return 0
	}
	return d / int64(time.Second)
}
