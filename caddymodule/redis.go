package caddymodule

import (
	"errors"

	"github.com/idlegate/idlegate/storage"
)

func openRedis(*StoreConfig) (storage.Store, error) {
	return nil, errors.New("idle_session: store redis: not built yet")
}
