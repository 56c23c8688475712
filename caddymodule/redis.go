package caddymodule

import (
	"github.com/idlegate/idlegate/storage"
)

// openRedis opens the shared Redis store that `store redis` configures.
func openRedis(c *StoreConfig) (storage.Store, error) {
	return storage.OpenRedis(storage.RedisOptions{
		URL:        c.URL,
		Addrs:      c.Addrs,
		MasterName: c.MasterName,
		Password:   c.Password,
		TLS:        c.TLS,
		Prefix:     c.Prefix,
	})
}
