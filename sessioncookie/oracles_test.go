package sessioncookie

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlegate/idlegate/internal/testnet"
)

// The oracles are the frameworks' own cookie parsers, run as they run in
// the test apps (testdata/oracles/README.md). Each external one is one
// process for a whole batch of headers.

var updateCookieCorpus = flag.Bool("update-cookie-corpus", false,
	"rewrite "+corpusFile+" from the generator and "+recordedFile+" from the real parsers")

// An oracle is one framework's real cookie parser.
type oracle struct {
	name string // php, django, express, rack, go
	// argv runs the external parser; nil for Go's, which runs in-process.
	argv []string
	// missing says why the parser cannot run here ("" = it can).
	missing func() string
}

const oracleDir = "testdata/oracles"

var oracles = []oracle{
	{name: "php", argv: []string{"php", oracleDir + "/php_cookies.php"}, missing: func() string {
		return needCommand("php", "Debian php-cli php-mbstring (tests/apps/setup.sh)")
	}},
	{name: "django", argv: []string{"/usr/bin/python3", oracleDir + "/django_cookies.py"}, missing: func() string {
		return needFile("/usr/lib/python3/dist-packages/django/__init__.py", "Debian python3-django (tests/apps/setup.sh)")
	}},
	{name: "express", argv: []string{"node", oracleDir + "/express_cookies.js"}, missing: func() string {
		if m := needCommand("node", "Debian nodejs (tests/apps/setup.sh)"); m != "" {
			return m
		}
		return needFile("../tests/apps/express/node_modules/cookie/index.js", "the Express app's npm packages (tests/apps/setup.sh runs npm ci)")
	}},
	{name: "rack", argv: []string{"ruby", oracleDir + "/rack_cookies.rb"}, missing: func() string {
		if m := needCommand("ruby", "Debian ruby-rack puma (.ci/run)"); m != "" {
			return m
		}
		if err := exec.Command("ruby", "-e", "require 'rack'; require 'puma'").Run(); err != nil {
			return "ruby cannot load rack and puma: install Debian ruby-rack puma (.ci/run)"
		}
		return ""
	}},
	{name: "go", missing: func() string { return "" }},
}

func needCommand(cmd, pkg string) string {
	if _, err := exec.LookPath(cmd); err != nil {
		return cmd + " not found: install " + pkg
	}
	return ""
}

func needFile(path, pkg string) string {
	if _, err := os.Stat(path); err != nil {
		return path + " not found: install " + pkg
	}
	return ""
}

// requireOracles skips the test when a parser cannot run here, or fails
// it when the environment variable CI is set: CI installs them all.
func requireOracles(t *testing.T) {
	t.Helper()
	var missing []string
	for _, o := range oracles {
		if m := o.missing(); m != "" {
			missing = append(missing, o.name+": "+m)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "real cookie parsers missing:\n\t" + strings.Join(missing, "\n\t")
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// parsed is what one framework hands the app for one request: its cookie
// map as ordered pairs, or the error that refused the request.
type parsed struct {
	Err   string
	Pairs []parsedPair
}

type parsedPair struct {
	Name  string
	Value parsedValue
}

// parsedValue is a cookie's value in the framework: a string, null (Rack's
// value of a pair without '='), or something else (a PHP array).
type parsedValue struct {
	Kind  string // "string", "null", "other"
	S     string // the string's bytes
	Other string // the JSON of the other value, normalized
}

func (p *parsed) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case map[string]any:
		e, _ := v["error"].(string)
		if e == "" {
			return fmt.Errorf("oracle answered %s", data)
		}
		*p = parsed{Err: e}
		return nil
	case []any:
		*p = parsed{Pairs: make([]parsedPair, 0, len(v))}
		for _, kv := range v {
			pair, ok := kv.([]any)
			if !ok || len(pair) != 2 {
				return fmt.Errorf("not a [name, value] pair: %v", kv)
			}
			name, ok := pair[0].(string)
			if !ok {
				return fmt.Errorf("cookie name %v", pair[0])
			}
			n, err := bytesOf(name)
			if err != nil {
				return err
			}
			var val parsedValue
			switch x := pair[1].(type) {
			case string:
				b, err := bytesOf(x)
				if err != nil {
					return err
				}
				val = parsedValue{Kind: "string", S: b}
			case nil:
				val = parsedValue{Kind: "null"}
			default:
				j, err := json.Marshal(x)
				if err != nil {
					return err
				}
				val = parsedValue{Kind: "other", Other: string(j)}
			}
			p.Pairs = append(p.Pairs, parsedPair{n, val})
		}
		return nil
	}
	return fmt.Errorf("oracle answered %s", data)
}

// bytesOf is the byte string a decoded JSON string stands for (bstr).
func bytesOf(u string) (string, error) {
	ascii := true
	for i := 0; i < len(u); i++ {
		if u[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return u, nil
	}
	b := make([]byte, 0, len(u))
	for _, r := range u {
		if r > 0xff {
			return "", fmt.Errorf("byte string holds code point U+%04X", r)
		}
		b = append(b, byte(r))
	}
	return string(b), nil
}

func (p parsed) MarshalJSON() ([]byte, error) {
	if p.Err != "" {
		return json.Marshal(map[string]string{"error": p.Err})
	}
	b := []byte{'['}
	for i, kv := range p.Pairs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendBstr(b, kv.Name)
		b = append(b, ',')
		switch kv.Value.Kind {
		case "string":
			b = appendBstr(b, kv.Value.S)
		case "null":
			b = append(b, "null"...)
		default:
			b = append(b, kv.Value.Other...)
		}
		b = append(b, ']')
	}
	return append(b, ']'), nil
}

func (p parsed) String() string {
	b, _ := p.MarshalJSON()
	return string(b)
}

// session is the value the framework's app reads for the cookie name, and
// whether it reads one: the framework's own lookup in its map (first pair
// of that name for Go, the map entry for the others). An empty string, a
// null or an array is no session.
func (p parsed) session(o, name string) (string, bool) {
	for _, kv := range p.Pairs {
		if kv.Name == name {
			if kv.Value.Kind == "string" && kv.Value.S != "" {
				return kv.Value.S, true
			}
			return "", false
		}
	}
	return "", false
}

// names returns the cookie names the app sees, for the clear_cookies check.
func (p parsed) names() []string {
	out := make([]string, len(p.Pairs))
	for i, kv := range p.Pairs {
		out[i] = kv.Name
	}
	return out
}

// goCookies is net/http's reading of a request's Cookie lines, as
// (*http.Request).Cookie(name) does it; FuzzReading's oracle. The
// differential test asks a real net/http server (goServerCookies).
func goCookies(lines []string) parsed {
	r := &http.Request{Header: http.Header{}}
	if len(lines) > 0 {
		r.Header["Cookie"] = lines
	}
	p := parsed{Pairs: []parsedPair{}}
	for _, c := range r.Cookies() {
		p.Pairs = append(p.Pairs, parsedPair{c.Name, parsedValue{Kind: "string", S: c.Value}})
	}
	return p
}

// askOracle parses every header (a list of Cookie lines) with the oracle:
// one process for the whole batch, writing while it reads.
func askOracle(ctx context.Context, t testing.TB, o oracle, headers [][]string) ([]parsed, error) {
	if o.argv == nil {
		return goServerCookies(ctx, headers)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.argv[0], o.argv[1:]...)
	cmd.Env = append(os.Environ(), "PHP_COOKIES_PORT="+strconv.Itoa(testnet.FreePort(t)))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	writeErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(stdin)
		var err error
		for _, h := range headers {
			b, _ := json.Marshal(toBstrs(h))
			w.Write(b)
			if err = w.WriteByte('\n'); err != nil {
				break
			}
		}
		if err == nil {
			err = w.Flush()
		}
		stdin.Close()
		writeErr <- err
	}()
	out := make([]parsed, 0, len(headers))
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() && len(out) < len(headers) {
		var p parsed
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("%s: answer %d: %v: %.300s", o.name, len(out)+1, err, sc.Bytes())
		}
		out = append(out, p)
	}
	scanErr := sc.Err()
	io.Copy(io.Discard, stdout)
	werr := <-writeErr
	waitErr := cmd.Wait()
	if len(out) != len(headers) || scanErr != nil || waitErr != nil {
		return nil, fmt.Errorf("%s: %d answers to %d headers (read: %v, write: %v, exit: %v); stderr:\n%s",
			o.name, len(out), len(headers), scanErr, werr, waitErr, lastLines(stderr.String(), 20))
	}
	return out, nil
}

// goServerCookies is Go's oracle: a net/http server on 127.0.0.1, its
// handler answering (*http.Request).Cookies(), sent every header as a raw
// HTTP/1.1 request. The server's own checks (header syntax, values, size)
// apply as in a Go app.
func goServerCookies(ctx context.Context, headers [][]string) ([]parsed, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := parsed{Pairs: []parsedPair{}}
		for _, c := range r.Cookies() {
			p.Pairs = append(p.Pairs, parsedPair{c.Name, parsedValue{Kind: "string", S: c.Value}})
		}
		b, _ := p.MarshalJSON()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}), ReadHeaderTimeout: 20 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	ask := func(lines []string) (parsed, error) {
		var req strings.Builder
		req.WriteString("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
		for _, l := range lines {
			req.WriteString("Cookie: " + l + "\r\n")
		}
		req.WriteString("Connection: close\r\n\r\n")
		d := net.Dialer{Timeout: 20 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return parsed{}, err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, req.String()); err != nil {
			return parsed{}, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return parsed{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return parsed{}, err
		}
		if resp.StatusCode != 200 {
			return parsed{Err: "HTTP " + strconv.Itoa(resp.StatusCode)}, nil
		}
		var p parsed
		return p, json.Unmarshal(body, &p)
	}
	out := make([]parsed, len(headers))
	errs := make([]error, len(headers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, h := range headers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = ask(h)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("go: %w", err)
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// askAll asks every oracle, concurrently, about its own batch of headers
// (deduplicated: the differential test sends many equal headers).
func askAll(t testing.TB, batches map[string][][]string) map[string]map[string]parsed {
	t.Helper()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		res  = map[string]map[string]parsed{}
	)
	for _, o := range oracles {
		uniq := map[string][]string{}
		for _, h := range batches[o.name] {
			uniq[headerKey(h)] = h
		}
		keys := make([]string, 0, len(uniq))
		for k := range uniq {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		headers := make([][]string, len(keys))
		for i, k := range keys {
			headers[i] = uniq[k]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			out, err := askOracle(context.Background(), t, o, headers)
			mu.Lock()
			defer mu.Unlock()
			t.Logf("oracle %s: %d distinct headers in %v", o.name, len(headers), time.Since(start).Round(time.Millisecond))
			if err != nil {
				errs = append(errs, err)
				return
			}
			m := make(map[string]parsed, len(keys))
			for i, k := range keys {
				m[k] = out[i]
			}
			res[o.name] = m
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return res
}

// headerKey identifies a list of Cookie lines.
func headerKey(lines []string) string {
	return strconv.Itoa(len(lines)) + "\x00" + strings.Join(lines, "\x00")
}

// recorded is one line of the recorded file: what each real parser read
// from one corpus entry, less the filler cookies (fillerCookies).
type recorded struct {
	ID      string `json:"id"`
	PHP     parsed `json:"php"`
	Django  parsed `json:"django"`
	Express parsed `json:"express"`
	Rack    parsed `json:"rack"`
	Go      parsed `json:"go"`
}

func (r recorded) of(o string) parsed {
	switch o {
	case "php":
		return r.PHP
	case "django":
		return r.Django
	case "express":
		return r.Express
	case "rack":
		return r.Rack
	}
	return r.Go
}

func recordCorpus(t testing.TB, entries []corpusEntry) []recorded {
	headers := make([][]string, len(entries))
	for i, e := range entries {
		headers[i] = e.header()
	}
	batches := map[string][][]string{}
	for _, o := range oracles {
		batches[o.name] = headers
	}
	res := askAll(t, batches)
	out := make([]recorded, len(entries))
	for i, e := range entries {
		k := headerKey(headers[i])
		of := func(o string) parsed {
			p := res[o][k]
			p.Pairs = slices.DeleteFunc(slices.Clone(p.Pairs), isFiller)
			return p
		}
		out[i] = recorded{ID: e.ID, PHP: of("php"), Django: of("django"),
			Express: of("express"), Rack: of("rack"), Go: of("go")}
	}
	return out
}

func loadRecorded(tb testing.TB) map[string]recorded {
	tb.Helper()
	m := map[string]recorded{}
	readJSONL(tb, recordedFile, func(line []byte) {
		var r recorded
		if err := json.Unmarshal(line, &r); err != nil {
			tb.Fatalf("%s: %v: %.200s", recordedFile, err, line)
		}
		m[r.ID] = r
	})
	return m
}

func encodeRecorded(rs []recorded) []byte {
	var buf bytes.Buffer
	for _, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			panic(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

// TestCookieCorpus checks that the committed corpus is what the generator
// makes and that the record covers it; that the real parsers still read
// every entry as recorded (a Debian update that changes PHP's or Django's
// parsing shows up there first) is checked by the differential test, in
// the same run of the parsers. With -update-cookie-corpus it rewrites both
// files instead.
func TestCookieCorpus(t *testing.T) {
	entries := generateCorpus()
	if *updateCookieCorpus {
		requireOracles(t)
		if err := os.WriteFile(corpusFile, encodeCorpus(entries), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(recordedFile, encodeRecorded(recordCorpus(t, entries)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %d entries to %s and %s", len(entries), corpusFile, recordedFile)
		return
	}
	committed, err := os.ReadFile(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, encodeCorpus(entries)) {
		t.Fatalf("%s is not what the generator makes: run go test ./sessioncookie -run '^TestCookieCorpus$' -update-cookie-corpus", corpusFile)
	}
	rec := loadRecorded(t)
	for _, e := range entries {
		if _, ok := rec[e.ID]; !ok {
			t.Fatalf("%s: not in %s: run %s/record.sh", e.ID, recordedFile, oracleDir)
		}
	}
	if len(rec) != len(entries) {
		t.Fatalf("%s has %d entries, the corpus %d: run %s/record.sh", recordedFile, len(rec), len(entries), oracleDir)
	}
}

// checkRecorded compares what the parsers read now from every corpus
// entry (live, with filler cookies) with the record. The differential test
// calls it with its own live run, which sends the raw entries along.
func checkRecorded(t *testing.T, entries []corpusEntry, rec map[string]recorded, live func(o string, lines []string) parsed) {
	t.Helper()
	drift := 0
	for _, e := range entries {
		r := rec[e.ID]
		for _, o := range oracles {
			l := live(o.name, e.header())
			l.Pairs = slices.DeleteFunc(slices.Clone(l.Pairs), isFiller)
			if got, want := l.String(), r.of(o.name).String(); got != want {
				if drift++; drift <= 20 {
					t.Errorf("%s: %s now reads %.300s, recorded %.300s", e.ID, o.name, got, want)
				}
			}
		}
	}
	if drift > 0 {
		t.Fatalf("%d readings differ from %s: a parser changed; if that is expected, run %s/record.sh and review the diff", drift, recordedFile, oracleDir)
	}
}
