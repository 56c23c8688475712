#!/bin/sh
# Runs every fuzz target of idlegate for FUZZTIME each (default 30s) and
# prints the executions of each run. CI runs it with FUZZTIME=10s; the seed
# corpora (testdata/fuzz/<Target>/) also run with every `go test ./...`.
#
#   scripts/fuzz.sh            # 30 s per target
#   FUZZTIME=5m scripts/fuzz.sh
set -eu
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
PARALLEL=${PARALLEL:-2}
for target in \
	./sessioncookie:FuzzFind \
	./sessioncookie:FuzzParseSetCookie \
	./sessioncookie:FuzzLaravelSessionID \
	./caddymodule:FuzzCaddyfile \
	./caddymodule:FuzzCleanUser; do
	pkg=${target%%:*}
	name=${target#*:}
	out=$(go test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel "$PARALLEL" 2>&1) || {
		echo "$out"
		echo "FAIL $pkg $name" >&2
		exit 1
	}
	execs=$(echo "$out" | grep -o 'execs: [0-9]*' | tail -1)
	echo "ok $pkg $name $FUZZTIME $execs"
done
