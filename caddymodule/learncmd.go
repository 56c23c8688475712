package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/idlegate/idlegate/learn"
)

// learnDonePath ends a learning run from the browser (or a script): it
// answers 200 with the suggestion.
const learnDonePath = "/.idlegate/learn/done"

const learnLong = `
Runs a plain reverse proxy (it enforces nothing) on --listen to --upstream
and watches a person use the app through it: sign in, click around, leave a
page open while it polls, sign out. On Ctrl-C (SIGINT/SIGTERM) or a request
to ` + learnDonePath + ` it prints a suggested idle_session block (to
stdout, or --out), each line with a comment saying what it was learned from.
No cookie value is kept: each is reduced to a keyed hash, to tell values
apart, and to whether it starts with the --user name.

  - cookie: the cookie the login response (a POST answered 2xx/3xx) set and
    the following requests carried; among several, the one rotated at login,
    then one whose name ends in a per-site hash (written as a pattern:
    wordpress_logged_in_*, DW*), then the one carried most.
  - family: the other cookies of the login response, listed as comments
    (idlegate learns them itself).
  - logout: the first signed-in request after which the app deleted the
    session cookie or another cookie of the login response.
  - passive: a path scripts call (X-Requested-With: XMLHttpRequest), or a
    request that is never a navigation and came again by itself (no
    navigation between) at least twice, at a regular interval.
  - the user (needs --user): a login cookie whose value is the name
    (user_cookie <name>) or starts with it and a separator
    (user_cookie <name> <sep>); else the login form's field that carried it
    (login { ... } and user_form <field> <status class>).
  - on_expired redirect: the last page (a navigation) before the login,
    commented out.
  - clear_cookies: cookies the signed-in requests carried that no response
    of the session set and the logout did not delete (commented out).

See docs/apps.md, "Learning mode".
`

func newLearnCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "learn --upstream <url> [--listen 127.0.0.1:2021] [--user <name>] [--out <file>]",
		Short: "Watches the app used through a plain proxy and suggests an idle_session block",
		Long:  learnLong,
		Args:  cobra.NoArgs,
		RunE:  cmdLearn,
	}
	c.Flags().String("upstream", "", "The app's URL, e.g. http://127.0.0.1:8080 (required)")
	c.Flags().String("listen", "127.0.0.1:2021", "Where the learning proxy listens")
	c.Flags().String("user", "", "The user name you will sign in as (to find where the app names the user)")
	c.Flags().String("out", "", "Write the suggestion to this file instead of stdout")
	return c
}

func cmdLearn(cmd *cobra.Command, _ []string) error {
	fl := cmd.Flags()
	upstream, _ := fl.GetString("upstream")
	listen, _ := fl.GetString("listen")
	user, _ := fl.GetString("user")
	out, _ := fl.GetString("out")
	target, err := url.Parse(upstream)
	if err != nil || target.Scheme == "" || target.Host == "" {
		return fmt.Errorf("--upstream: want the app's URL, like http://127.0.0.1:8080 (got %q)", upstream)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	l := &learner{rec: learn.NewRecorder(user), upstream: target.String(), done: make(chan struct{})}
	l.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // as Caddy's reverse_proxy: the app builds its URLs from the browser's Host
			r.SetXForwarded()
		},
		ModifyResponse: l.record,
	}
	srv := &http.Server{Handler: l, ReadHeaderTimeout: 30 * time.Second}
	fmt.Fprintf(os.Stderr, "learning: open http://%s/ and use the app (sign in, click around, sign out); then Ctrl-C or open http://%s%s\n", ln.Addr(), ln.Addr(), learnDonePath)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case <-sig:
	case <-l.done:
	case err := <-served:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx) // lets the done request's answer go out
	text := l.suggestion()
	if out != "" {
		return os.WriteFile(out, []byte(text), 0o644)
	}
	_, err = io.WriteString(os.Stdout, text)
	return err
}

// learner is the learning proxy: every exchange is recorded, nothing is
// enforced.
type learner struct {
	rec      *learn.Recorder
	upstream string
	proxy    *httputil.ReverseProxy

	once sync.Once
	done chan struct{}
}

type inKey struct{}

// inbound is the request as the learner received it (the outbound one
// carries the upstream's URL) and the start of its body.
type inbound struct {
	req  *http.Request
	head []byte
}

func (l *learner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == learnDonePath {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, l.suggestion())
		l.once.Do(func() { close(l.done) })
		return
	}
	// An urlencoded body is read up to learn.MaxBody to name its fields
	// and passed on byte for byte: what was read, then the rest unread.
	// Other bodies (uploads, streams) are not touched.
	head, err := peekForm(r, learn.MaxBody)
	if err != nil {
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	in := &inbound{req: r, head: head}
	l.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), inKey{}, in)))
}

func (l *learner) record(resp *http.Response) error {
	if in, ok := resp.Request.Context().Value(inKey{}).(*inbound); ok {
		l.rec.Record(in.req, in.head, resp)
	}
	return nil
}

func (l *learner) suggestion() string {
	s := learn.Suggest(l.rec.Exchanges())
	if n := l.rec.Dropped(); n > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("only the first %d requests were kept (%d more were passed on unrecorded)", learn.MaxExchanges, n))
	}
	return learn.Render(s, l.upstream)
}
