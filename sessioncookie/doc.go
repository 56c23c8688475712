// Package sessioncookie reads and writes the session cookies of the
// applications idlegate sits in front of.
//
// It knows nothing about Caddy or sessions. It answers four questions the
// handler asks on every request and response:
//
//   - Which value does the request carry for the session cookie, and does it
//     carry that cookie more than once? ([Find], [Names])
//   - Did the upstream set or delete the cookie in its response?
//     ([ParseSetCookie], [FromResponse])
//   - How is a cookie deleted in the browser? ([Clear], [Matcher])
//   - Which session does an encrypted Laravel cookie stand for? ([Laravel])
//
// Everything here treats its input as hostile: no input makes a function
// panic, oversized input is refused early, and the request-path function
// [Find] does not allocate.
package sessioncookie
