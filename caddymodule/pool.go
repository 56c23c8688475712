package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/webhook"
)

// engines holds one running engine per store (a bbolt file, a Redis
// keyspace). Handlers of every config that use the store share it, so a
// reload keeps sessions, deadlines and the outbox in memory and the bbolt
// file is opened once per process.
var engines = caddy.NewUsagePool()

// clock, when set, replaces time.Now for every engine and delivery worker,
// so in-process tests move time instead of waiting for it. It is atomic:
// engines of a previous config may still be running when a test swaps it.
var clock atomic.Pointer[func() time.Time]

// now is the time of every engine's clock.
func now() time.Time {
	if f := clock.Load(); f != nil {
		return (*f)()
	}
	return time.Now()
}

// sharedEngine is a store with its engine and webhook worker.
type sharedEngine struct {
	store  storage.Store
	engine *engine.Engine
	worker *webhook.Worker
	ws     *wsRegistry // open WebSockets, closed when their session ends
	stop   context.CancelFunc
	done   chan struct{}
}

// Destruct stops delivery, flushes the engine and closes the store.
func (s *sharedEngine) Destruct() error {
	s.stop()
	<-s.done
	err := s.engine.Close()
	if cerr := s.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// storeKey names the store in the engines pool: handlers with the same key
// share one engine. It covers every connection setting, so a reload that
// changes any of them (the password, TLS) opens a new client; Redis
// settings are hashed, so no password sits in the pool in clear.
func storeKey(c *StoreConfig) (string, error) {
	switch c.Type {
	case "redis":
		b, err := json.Marshal(c)
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256(b)
		return "redis:" + hex.EncodeToString(sum[:]), nil
	default:
		p := c.Path
		if p == "" {
			p = filepath.Join(caddy.AppDataDir(), "idlegate", "sessions.db")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		c.Path = abs
		return "bolt:" + abs, nil
	}
}

// acquireEngine returns the running engine of the configured store, starting
// it if this is the first config to use the store.
func acquireEngine(c *StoreConfig) (*sharedEngine, string, error) {
	key, err := storeKey(c)
	if err != nil {
		return nil, "", fmt.Errorf("store: %w", err)
	}
	v, _, err := engines.LoadOrNew(key, func() (caddy.Destructor, error) {
		st, err := openStore(c)
		if err != nil {
			return nil, err
		}
		return startEngine(st), nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*sharedEngine), key, nil
}

func openStore(c *StoreConfig) (storage.Store, error) {
	switch c.Type {
	case "redis":
		return openRedis(c)
	default:
		return storage.OpenBolt(c.Path, storage.BoltOptions{FoldError: func(err error) {
			log := handlerLog()
			engineObserver{log: log}.StoreError("fold", err)
			log.Error("idlegate could not fold the activity log into the session records; will retry",
				zap.String("store", c.Path), zap.Error(err))
		}, JournalError: func(err error) {
			log := handlerLog()
			engineObserver{log: log}.StoreError("journal", err)
			log.Warn("idlegate runs without its activity journal; flushes commit to the bbolt file",
				zap.String("store", c.Path), zap.Error(err))
		}})
	}
}

// handlerLog is the logger of the handler and of what runs for it.
func handlerLog() *zap.Logger { return caddy.Log().Named("http.handlers.idle_session") }

func startEngine(st storage.Store) *sharedEngine {
	log := handlerLog()
	s := &sharedEngine{store: st, ws: newWSRegistry(), done: make(chan struct{})}
	var kick func()
	s.engine = engine.New(st, engine.WebhookEvents{}, engine.Options{
		Now:      func() time.Time { return now() },
		Logger:   log,
		Observer: engineObserver{log: log, ws: s.ws},
		Queued:   func() { kick() },
	})
	s.worker = webhook.NewWorker(st, s.targets, webhook.Options{
		Now:      func() time.Time { return now() },
		Client:   &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Observer: deliveryObserver{},
		Logger:   log.Named("webhook"),
	})
	kick = s.worker.Kick
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() {
		defer close(s.done)
		s.worker.Run(ctx)
	}()
	return s
}

// targets gives the delivery worker the webhook configured now for a zone.
func (s *sharedEngine) targets(zone string) (webhook.Target, bool) {
	z, ok := s.engine.Zone(zone)
	if !ok || z.Config().Webhook == nil {
		return webhook.Target{}, false
	}
	w := z.Config().Webhook
	return webhook.Target{URL: w.URL, Key: w.Key, Timeout: w.Timeout, MaxAttempts: w.MaxAttempts}, true
}
