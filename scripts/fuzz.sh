#!/bin/sh
# Runs every fuzz target of idlegate and prints the executions of each run.
# The seed corpora (testdata/fuzz/<Target>/) also run with every `go test ./...`.
#
#   scripts/fuzz.sh                # the short run CI does: a budget of executions per target
#   FUZZTIME=5m scripts/fuzz.sh    # the long form: this long per target
#   FUZZTIME=500000x scripts/fuzz.sh
#
# The short run counts executions, not seconds. With a duration, Go 1.26's
# fuzzing coordinator can fail a run at its deadline with "context deadline
# exceeded" having found nothing (golang/go#75804, fixed in Go 1.27); a count
# sets no deadline. Each budget is about 10 s of fuzzing on the 2-core
# development machine. Minimising an input that finds new coverage is capped
# by count as well (Go's default is 60 s per input, which on these slower
# targets takes the rest of a short run, with no executions reported).
set -eu
cd "$(dirname "$0")/.."
PARALLEL=${PARALLEL:-2}
MINIMIZE=${MINIMIZE:-2000x}
for target in \
	./sessioncookie:FuzzParseSetCookie:100000x \
	./sessioncookie:FuzzLaravelSessionID:50000x \
	./sessioncookie:FuzzReading:5000x \
	./caddymodule:FuzzCaddyfile:1000x \
	./caddymodule:FuzzCleanUser:5000x \
	./caddymodule:FuzzFormField:20000x \
	./warning:FuzzInject:3000x; do
	pkg=${target%%:*}
	rest=${target#*:}
	name=${rest%%:*}
	budget=${FUZZTIME:-${rest#*:}}
	start=$(date +%s)
	out=$(go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$budget" \
		-fuzzminimizetime "$MINIMIZE" -parallel "$PARALLEL" 2>&1) || {
		echo "$out"
		echo "FAIL $pkg $name" >&2
		exit 1
	}
	execs=$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1)
	echo "ok $pkg $name $budget $execs in $(($(date +%s) - start)) s"
done
