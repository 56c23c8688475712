// Command load is the benchmark tool behind tests/bench/run. Its
// subcommands:
//
//	load upstream -listen ADDR            a trivial upstream: 200 "ok"
//	load seed -db FILE -n N               a bbolt store with N sessions
//	load wait -url URL                    poll until URL answers; print the seconds waited
//	load compare -a URL -b URL ...        alternate closed-loop (and fixed-rate) runs; print ratios
//	load sweeplag -db FILE -n N -rate R   expiry lag of the engine at N sessions, R deadlines/s
//	load webhook -n N                     webhook delivery throughput to a local receiver
//	load login -url URL -n N -out FILE    sign in N times; write the session cookie values
//	load churn -n N -cycles C             bbolt file size under churn (start, end, deliver, purge)
//	load instr -caddy BIN -dir DIR        instructions per request under callgrind, plain vs idle_session
//	load freeport                         print a free TCP port on 127.0.0.1
//
// Every subcommand prints one JSON object on stdout (results) and progress
// on stderr, so the script can both show and keep the figures.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: load upstream|seed|wait|compare|sweeplag|webhook|login|churn|instr|freeport [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"upstream": cmdUpstream,
		"seed":     cmdSeed,
		"wait":     cmdWait,
		"compare":  cmdCompare,
		"sweeplag": cmdSweepLag,
		"webhook":  cmdWebhook,
		"freeport": cmdFreePort,
		"login":    cmdLogin,
		"churn":    cmdChurn,
		"instr":    cmdInstr,
	}
	fn, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "load: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := fn(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "load %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// emit prints v as one line of JSON on stdout.
func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func cmdFreePort([]string) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Println(strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	return nil
}

// cookieValue is the value of session i's cookie: 32 characters, like
// Django's sessionid. seed and compare agree on it.
func cookieValue(dst []byte, i int) []byte {
	dst = append(dst, 'k')
	var num [20]byte
	d := strconv.AppendInt(num[:0], int64(i), 10)
	for range 31 - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}
