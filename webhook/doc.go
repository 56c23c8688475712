// Package webhook delivers idlegate's session events as Standard Webhooks
// (https://www.standardwebhooks.com): it encodes the payloads of docs/design.md,
// signs them with the zone's whsec_ secret, and runs the Worker that drains
// the durable outbox of package storage with retries, exponential backoff
// with jitter, Retry-After and dead letters.
//
// Delivery is at least once. An event is removed from the outbox only after
// the receiver answered 2xx; a crash or shutdown in between means it is sent
// again, with the same webhook-id, which is the receiver's idempotency key.
//
// The pieces:
//
//   - ParseSecret, Sign and Verify: the whsec_ secret and the
//     webhook-signature header;
//   - EndedEvent and StartedEvent: the storage.Event, with the JSON body of
//     docs/design.md, that is queued in the same transaction as the session end;
//   - Worker: drains the outbox, one POST per attempt, with at most
//     Options.Concurrency attempts in flight.
package webhook
