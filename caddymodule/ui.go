package caddymodule

import "net/http"

// serveUI serves the live "who is online" page. (Placeholder until the page
// lands; the route exists so the admin API's surface is stable.)
func serveUI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotImplemented)
	_, err := w.Write([]byte("not yet\n"))
	return err
}
