package caddymodule

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
)

// An upgraded connection (a WebSocket through reverse_proxy) belongs to the
// session of its upgrade request. It is registered here when the handler
// below hijacks it, and closed when that session ends: revoked, logout,
// idle or absolute. With websocket_activity, client frames count as the
// session's activity, at most once per wsTouchInterval.
//
// Only HTTP/1.1 upgrades are tracked: that is what browsers use for
// WebSockets through Caddy unless HTTP/2 extended CONNECT is enabled.

// wsTouchInterval bounds the activity bookkeeping of one connection: a
// stream of frames costs one tracker touch per interval, not one per frame.
var wsTouchInterval = time.Second

// wsCloseCode is the WebSocket close status sent when the session ends:
// 1008, policy violation (RFC 6455 7.4.1).
const wsCloseCode = 1008

// wsRegistry holds the open upgraded connections of one engine by session.
type wsRegistry struct {
	n  atomic.Int64 // open connections; lets ended and rekey skip the lock
	mu sync.Mutex
	by map[wsKey]map[*wsConn]struct{}
}

type wsKey struct {
	zone string
	id   idletrack.ID
}

func newWSRegistry() *wsRegistry {
	return &wsRegistry{by: make(map[wsKey]map[*wsConn]struct{})}
}

// Len returns the number of open connections.
func (r *wsRegistry) Len() int { return int(r.n.Load()) }

func (r *wsRegistry) add(c *wsConn) {
	r.mu.Lock()
	set := r.by[c.key]
	if set == nil {
		set = make(map[*wsConn]struct{}, 1)
		r.by[c.key] = set
	}
	set[c] = struct{}{}
	r.n.Add(1)
	r.mu.Unlock()
}

func (r *wsRegistry) remove(c *wsConn) {
	r.mu.Lock()
	if set, ok := r.by[c.key]; ok {
		if _, ok := set[c]; ok {
			delete(set, c)
			r.n.Add(-1)
			if len(set) == 0 {
				delete(r.by, c.key)
			}
		}
	}
	r.mu.Unlock()
}

// id returns the session c belongs to now (rotation may have moved it).
func (r *wsRegistry) id(c *wsConn) idletrack.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.key.id
}

// ended closes every connection of session id in zone. It is called from
// the engine's observer, so it never blocks: closing happens elsewhere.
func (r *wsRegistry) ended(zone string, id idletrack.ID, why idletrack.Reason) {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	set := r.by[wsKey{zone, id}]
	conns := make([]*wsConn, 0, len(set))
	for c := range set {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.end(why)
	}
}

// rekey follows a rotation: the session's connections now belong to id.
func (r *wsRegistry) rekey(zone string, old, id idletrack.ID) {
	if r.n.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	from := wsKey{zone, old}
	set, ok := r.by[from]
	if !ok {
		return
	}
	delete(r.by, from)
	to := wsKey{zone, id}
	dst := r.by[to]
	if dst == nil {
		dst = make(map[*wsConn]struct{}, len(set))
		r.by[to] = dst
	}
	for c := range set {
		c.key = to
		dst[c] = struct{}{}
	}
}

// wsConn is a hijacked client connection of a session. Embedding net.Conn
// keeps only the net.Conn methods: reverse_proxy then copies through Read,
// which is where client frames are seen.
type wsConn struct {
	net.Conn
	reg       *wsRegistry
	eng       *engine.Engine
	zone      *engine.Zone
	key       wsKey // guarded by reg.mu
	activity  bool  // websocket_activity
	websocket bool  // Upgrade: websocket (a close frame is sent on end)
	lastTouch atomic.Int64
	ending    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// trackUpgrade registers conn, the hijacked connection of a switched
// protocol answered to a request of session id, and returns the connection
// the proxy should use instead.
func (h *Handler) trackUpgrade(conn net.Conn, id idletrack.ID, websocket bool) net.Conn {
	c := &wsConn{
		Conn:      conn,
		reg:       h.shared.ws,
		eng:       h.shared.engine,
		zone:      h.z,
		key:       wsKey{h.z.Name(), id},
		activity:  h.WebsocketActivity,
		websocket: websocket,
	}
	c.lastTouch.Store(h.shared.engine.Now())
	c.reg.add(c)
	// The session may have ended between the check of the upgrade request
	// and now; its end was then reported before c was registered.
	if _, live := h.z.Tracker().Get(id); !live {
		c.end(idletrack.ReasonLogout)
	}
	return c
}

// Read passes client data to the proxy. With websocket_activity, data from
// the client is the session's activity, recorded at most once per
// wsTouchInterval.
func (c *wsConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.activity {
		now := c.eng.Now()
		if last := c.lastTouch.Load(); now-last >= int64(wsTouchInterval) && c.lastTouch.CompareAndSwap(last, now) {
			v := c.zone.Check(context.Background(), c.reg.id(c), now, true)
			if v.Status != idletrack.StatusActive {
				c.end(v.Reason)
			}
		}
	}
	return n, err
}

// CloseWrite keeps reverse_proxy's half-close working.
func (c *wsConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("connection has no write half to close")
}

// Close unregisters and closes the connection.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		c.reg.remove(c)
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}

// end closes the connection because its session ended: a WebSocket first
// gets a close frame naming the reason. It does not block the caller.
func (c *wsConn) end(why idletrack.Reason) {
	if !c.ending.CompareAndSwap(false, true) {
		return
	}
	go func() {
		if c.websocket {
			c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			c.Conn.Write(wsCloseFrame(wsCloseCode, "session ended: "+string(why)))
		}
		c.Close()
	}()
}

// wsCloseFrame builds an unmasked (server-to-client) close frame.
func wsCloseFrame(code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	f := make([]byte, 4, 4+len(reason))
	f[0] = 0x88 // FIN + close
	f[1] = byte(2 + len(reason))
	binary.BigEndian.PutUint16(f[2:], code)
	return append(f, reason...)
}

// Hijack hands over the client connection. After a 101 answer to a request
// of a live session, the connection is registered under the session, so it
// is closed when the session ends. http.ResponseController finds this
// method before unwrapping the observer.
func (o *observer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(o.ResponseWriter).Hijack()
	if err != nil || !o.switched || !o.active {
		return conn, brw, err
	}
	websocket := strings.EqualFold(o.Header().Get("Upgrade"), "websocket")
	return o.h.trackUpgrade(conn, o.session, websocket), brw, nil
}
