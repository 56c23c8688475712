package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "idle-sessions",
		Usage: "list|stats|revoke|dead-letters|ui|learn [--address <admin>] [--json]",
		Short: "Shows and ends idlegate sessions through the running Caddy's admin API",
		Long: `
Talks to the admin endpoint of a running Caddy with idlegate's idle_session
handler (default localhost:2019, or the one named by --address, or found in
--config). Tables are for people; --json prints the API's answer unchanged,
for scripts.

  caddy idle-sessions list [--user <id>] [--zone <zone>] [--limit <n>]
      Who is online: one row per session, newest activity first.
  caddy idle-sessions stats
      Active sessions by zone, users online, webhooks pending and dead.
  caddy idle-sessions revoke --user <id> [--zone <zone>]
      Log a user out everywhere: every session of the user ends (reason
      revoked, one webhook each) and its cookie is refused from now on.
  caddy idle-sessions revoke <session>
      End one session, named by the 16 hex digits that list shows.
  caddy idle-sessions dead-letters [--retry [<id>...]]
      Webhooks that failed every attempt; --retry queues them again.
  caddy idle-sessions ui [--listen 127.0.0.1:2020]
      Serves the live who-is-online page for a browser. (Caddy's admin
      endpoint refuses browser navigations by design, so the page at
      /idle-sessions/ui is relayed here, read-only.)
  caddy idle-sessions learn --upstream <url> [--listen 127.0.0.1:2021] [--user <name>] [--out <file>]
      Learning mode, for an app you do not know: a plain proxy that enforces
      nothing watches you sign in, click around and sign out, then prints a
      suggested idle_session block (see caddy idle-sessions learn --help).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("address", "", "The address of Caddy's admin API")
			cmd.PersistentFlags().StringP("config", "c", "", "Configuration file to find the admin address in")
			cmd.PersistentFlags().StringP("adapter", "a", "", "Name of config adapter to apply (when --config is used)")
			cmd.PersistentFlags().Bool("json", false, "Print the API's JSON instead of a table")

			list := &cobra.Command{
				Use:   "list",
				Short: "Lists active sessions, newest activity first",
				Args:  cobra.NoArgs,
				RunE:  cmdList,
			}
			list.Flags().String("user", "", "Only this user's sessions")
			list.Flags().String("zone", "", "Only this zone's sessions")
			list.Flags().Int("limit", 0, "At most this many sessions (default: the API's, 1000)")

			stats := &cobra.Command{
				Use:   "stats",
				Short: "Counts sessions, users online and webhooks",
				Args:  cobra.NoArgs,
				RunE:  cmdStats,
			}
			revoke := &cobra.Command{
				Use:   "revoke (--user <id> | <session>)",
				Short: "Ends one session, or every session of a user",
				Args:  cobra.MaximumNArgs(1),
				RunE:  cmdRevoke,
			}
			revoke.Flags().String("user", "", "End every session of this user")
			revoke.Flags().String("zone", "", "Only in this zone")

			dead := &cobra.Command{
				Use:   "dead-letters [--retry [<id>...]]",
				Short: "Lists webhooks that failed every attempt, or queues them again",
				RunE:  cmdDeadLetters,
			}
			dead.Flags().Bool("retry", false, "Queue the dead letters again (all, or the IDs given)")

			ui := &cobra.Command{
				Use:   "ui [--listen <addr>]",
				Short: "Serves the live who-is-online page on a local address",
				Args:  cobra.NoArgs,
				RunE:  cmdUI,
			}
			ui.Flags().String("listen", "127.0.0.1:2020", "Where to serve the page")

			cmd.AddCommand(list, stats, revoke, dead, ui, newLearnCommand())
		},
	})
}

// adminAddr is the admin endpoint named by the flags.
func adminAddr(cmd *cobra.Command) (string, error) {
	fl := cmd.Flags()
	addr, _ := fl.GetString("address")
	cfg, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, cfg, adapter)
	if err != nil {
		return "", fmt.Errorf("finding the admin API: %w", err)
	}
	return addr, nil
}

// query calls the admin API for a subcommand: with --json it prints the
// answer unchanged and reports printed, otherwise it decodes it into out
// for the table.
func query(cmd *cobra.Command, method, uri string, body any, out any) (printed bool, err error) {
	raw, err := adminCall(cmd, method, uri, body, out)
	if err != nil || !jsonFlag(cmd) {
		return false, err
	}
	printRaw(raw)
	return true, nil
}

// adminCall sends one request to the admin API and decodes its JSON answer
// into out (when not nil). It returns the raw body for --json.
func adminCall(cmd *cobra.Command, method, uri string, body any, out any) ([]byte, error) {
	addr, err := adminAddr(cmd)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, rd)
	if err != nil {
		return nil, apiMessage(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("reading the admin API's answer: %w", err)
		}
	}
	return raw, nil
}

// apiMessage turns "caddy responded with error: HTTP 404: {"error":"..."}"
// into "HTTP 404: ...".
func apiMessage(err error) error {
	msg := err.Error()
	i := strings.Index(msg, "HTTP ")
	j := strings.Index(msg, "{")
	if i < 0 || j < i {
		return err
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(msg[j:]), &e) != nil || e.Error == "" {
		return err
	}
	if strings.Contains(msg, "HTTP 404") && strings.Contains(e.Error, "/idle-sessions/") {
		e.Error += " (is idlegate's idle_session handler in this Caddy's config?)"
	}
	return errors.New(strings.TrimSpace(msg[i:j]) + " " + e.Error)
}

func jsonFlag(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}

func printRaw(raw []byte) {
	os.Stdout.Write(raw)
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		fmt.Println()
	}
}

func cmdList(cmd *cobra.Command, _ []string) error {
	q := url.Values{}
	for _, f := range []string{"user", "zone"} {
		if v, _ := cmd.Flags().GetString(f); v != "" {
			q.Set(f, v)
		}
	}
	if n, _ := cmd.Flags().GetInt("limit"); n > 0 {
		q.Set("limit", strconv.Itoa(n))
	}
	uri := "/idle-sessions/"
	if len(q) > 0 {
		uri += "?" + q.Encode()
	}
	var out struct {
		Sessions []sessionJSON `json:"sessions"`
		Count    int           `json:"count"`
	}
	if printed, err := query(cmd, http.MethodGet, uri, nil, &out); err != nil || printed {
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tZONE\tUSER\tONLINE\tIDLE\tREMAINING\tREQUESTS")
	for _, s := range out.Sessions {
		user := "-"
		if s.User != nil {
			user = *s.User
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", s.Session, s.Zone, user,
			human(now.Sub(s.StartedAt)), human(now.Sub(s.LastActivityAt)),
			human(time.Duration(s.RemainingSeconds)*time.Second), s.Requests)
	}
	tw.Flush()
	if out.Count > len(out.Sessions) {
		fmt.Printf("%d sessions, %d shown\n", out.Count, len(out.Sessions))
	} else {
		fmt.Printf("%d sessions\n", out.Count)
	}
	return nil
}

// human prints a duration the way an operator reads it: 42s, 5m03s, 2h04m.
func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

func cmdStats(cmd *cobra.Command, _ []string) error {
	var out struct {
		Active         int            `json:"active"`
		Zones          map[string]int `json:"zones"`
		UsersOnline    int            `json:"users_online"`
		WebhookPending int            `json:"webhook_pending"`
		DeadLetters    int            `json:"dead_letters"`
	}
	if printed, err := query(cmd, http.MethodGet, "/idle-sessions/stats", nil, &out); err != nil || printed {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "active sessions\t%d\n", out.Active)
	for z, n := range out.Zones {
		fmt.Fprintf(tw, "  zone %s\t%d\n", z, n)
	}
	fmt.Fprintf(tw, "users online\t%d\n", out.UsersOnline)
	fmt.Fprintf(tw, "webhooks pending\t%d\n", out.WebhookPending)
	fmt.Fprintf(tw, "dead letters\t%d\n", out.DeadLetters)
	return tw.Flush()
}

func cmdRevoke(cmd *cobra.Command, args []string) error {
	user, _ := cmd.Flags().GetString("user")
	zone, _ := cmd.Flags().GetString("zone")
	q := url.Values{}
	if zone != "" {
		q.Set("zone", zone)
	}
	var uri string
	switch {
	case user != "" && len(args) == 0:
		q.Set("user", user)
		uri = "/idle-sessions/?" + q.Encode()
	case user == "" && len(args) == 1:
		uri = "/idle-sessions/" + url.PathEscape(args[0])
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
	default:
		return errors.New("name either a user (--user <id>) or one session (its 16 hex digits from `caddy idle-sessions list`)")
	}
	var out struct {
		Revoked int `json:"revoked"`
	}
	if printed, err := query(cmd, http.MethodDelete, uri, nil, &out); err != nil || printed {
		return err
	}
	if user != "" {
		fmt.Printf("revoked %d session(s) of user %s\n", out.Revoked, user)
	} else {
		fmt.Printf("revoked session %s\n", args[0])
	}
	return nil
}

func cmdDeadLetters(cmd *cobra.Command, args []string) error {
	if retry, _ := cmd.Flags().GetBool("retry"); retry {
		var out struct {
			Requeued int `json:"requeued"`
		}
		if printed, err := query(cmd, http.MethodPost, "/idle-sessions/dead-letters/retry", map[string][]string{"ids": args}, &out); err != nil || printed {
			return err
		}
		fmt.Printf("queued %d dead letter(s) again\n", out.Requeued)
		return nil
	}
	if len(args) > 0 {
		return errors.New("IDs are only taken with --retry")
	}
	var out struct {
		DeadLetters []deadLetterJSON `json:"dead_letters"`
		Count       int              `json:"count"`
	}
	if printed, err := query(cmd, http.MethodGet, "/idle-sessions/dead-letters", nil, &out); err != nil || printed {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tZONE\tTYPE\tATTEMPTS\tAT\tLAST ERROR")
	for _, d := range out.DeadLetters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Zone, d.Type, d.Attempts, d.At.Format(time.RFC3339), d.LastError)
	}
	tw.Flush()
	fmt.Printf("%d dead letter(s)\n", out.Count)
	return nil
}

// cmdUI relays the who-is-online page and the session list (GET only) from
// the admin endpoint to a local address a browser may open.
func cmdUI(cmd *cobra.Command, _ []string) error {
	addr, err := adminAddr(cmd)
	if err != nil {
		return err
	}
	listen, _ := cmd.Flags().GetString("listen")
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("who is online: http://%s/ (reading %s; Ctrl-C to stop)\n", ln.Addr(), addr)
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet {
				w.Header().Set("Allow", "GET")
				http.Error(w, "read-only", http.StatusMethodNotAllowed)
				return
			}
			path := r.URL.Path
			switch path {
			case "/":
				path = "/idle-sessions/ui"
			case "/idle-sessions/", "/idle-sessions/ui", "/idle-sessions/stats":
			default:
				http.NotFound(w, r)
				return
			}
			if r.URL.RawQuery != "" {
				path += "?" + r.URL.RawQuery
			}
			resp, err := caddycmd.AdminAPIRequest(addr, http.MethodGet, path, nil, nil)
			if err != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadGateway)
				json.NewEncoder(w).Encode(map[string]string{"error": apiMessage(err).Error()})
				return
			}
			defer resp.Body.Close()
			for _, h := range []string{"Content-Type", "Cache-Control", "Content-Security-Policy", "X-Content-Type-Options"} {
				if v := resp.Header.Get(h); v != "" {
					w.Header().Set(h, v)
				}
			}
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
		}),
	}
	return srv.Serve(ln)
}
