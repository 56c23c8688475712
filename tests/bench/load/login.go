package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// cmdLogin signs in -n times through -url (POST /login, form fields
// username and password, as every app in tests/apps takes them) and writes
// the session cookie value of each sign-in to -out, one a line, for
// compare's -a-cookies/-b-cookies.
func cmdLogin(args []string) error {
	fs := flag.NewFlagSet("login", flag.ExitOnError)
	base := fs.String("url", "", "app base URL (through the proxy under test)")
	cookie := fs.String("cookie", "sessionid", "session cookie name")
	n := fs.Int("n", 50, "sessions")
	user := fs.String("user", "alice", "username")
	pass := fs.String("password", "alice-pw", "password")
	out := fs.String("out", "", "file to write the cookie values to")
	fs.Parse(args)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var values []string
	for range *n {
		resp, err := c.PostForm(strings.TrimSuffix(*base, "/")+"/login", url.Values{"username": {*user}, "password": {*pass}})
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return fmt.Errorf("login answered %s", resp.Status)
		}
		found := false
		for _, ck := range resp.Cookies() {
			if ck.Name == *cookie && ck.Value != "" {
				values = append(values, ck.Value)
				found = true
			}
		}
		if !found {
			return fmt.Errorf("login set no %s cookie", *cookie)
		}
	}
	return os.WriteFile(*out, []byte(strings.Join(values, "\n")+"\n"), 0o600)
}

// readCookies reads a file written by login.
func readCookies(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}
