package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
)

// cmdUpstream serves a trivial application: every request gets 200 with a
// small body. It stands for an app whose own cost is negligible, so the
// benchmark sees the proxy's overhead at its largest.
func cmdUpstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	fs.Parse(args)
	body := []byte("ok\n")
	srv := &http.Server{
		Addr: *listen,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	fmt.Fprintf(os.Stderr, "upstream listening on %s\n", *listen)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// cmdWait polls url until it answers (any status) and prints the seconds
// since -since (Unix seconds with fraction, e.g. from `date +%s.%N`), or
// since its own start.
func cmdWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	url := fs.String("url", "", "URL to poll")
	since := fs.Float64("since", 0, "start time, Unix seconds")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after")
	fs.Parse(args)
	start := time.Now()
	if *since > 0 {
		start = time.Unix(0, int64(*since*1e9))
	}
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(*timeout)
	for time.Now().Before(deadline) {
		resp, err := c.Get(*url)
		if err == nil {
			resp.Body.Close()
			emit(map[string]any{"ready_seconds": time.Since(start).Seconds()})
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer within %s", *url, *timeout)
}
