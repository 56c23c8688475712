#!/usr/bin/env bash
# Smoke test of the four test apps, without idlegate: start each on a free
# port, drive the login -> page -> poll -> webhook -> logout scenario with curl,
# stop it by PID, print PASS/FAIL per app.
#   tests/apps/smoke.sh [django] [laravel] [php] [express]
#   DIY_LAST_ACTIVITY=1 tests/apps/smoke.sh django php   # also checks the DIY variant
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
apps=("$@"); [ ${#apps[@]} -eq 0 ] && apps=(django laravel php express)

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Standard Webhooks signature: base64(HMAC-SHA256(key, "id.timestamp.body")),
# key = base64-decoded part of the secret after "whsec_".
sign() { # secret id ts body
    local hexkey
    hexkey=$(printf '%s' "${1#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
    printf '%s.%s.%s' "$2" "$3" "$4" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64 -w0
}

overall=0
for app in "${apps[@]}"; do
    work=$(mktemp -d "/tmp/idlegate-smoke-$app.XXXXXX")
    state="$work/state"; mkdir -p "$state"
    jar="$work/cookies"; log="$work/server.log"
    port=$(free_port)
    base="http://127.0.0.1:$port"
    secret="whsec_$(head -c 24 /dev/urandom | base64 -w0)"
    fails=()
    check() { # description, condition (string evaluated)
        if eval "$2"; then :; else fails+=("$1"); fi
    }

    t0=$(date +%s.%N)
    APP_STATE_DIR="$state" IDLEGATE_WEBHOOK_SECRET="$secret" "$here/$app/start" "$port" >"$log" 2>&1 &
    pid=$!
    up=""
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null "$base/login" 2>/dev/null; then up=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    startup=$(/usr/bin/python3 -c "import time; print('%.1fs' % (time.time() - $t0))")
    if [ -z "$up" ]; then
        echo "FAIL $app: did not come up on port $port"; sed 's/^/    /' "$log" | tail -20
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; overall=1; continue
    fi

    c() { curl -sS -b "$jar" -c "$jar" "$@"; }
    hdr="$work/h"; body="$work/b"

    # login page
    code=$(c -o "$body" -w '%{http_code}' "$base/login")
    check "GET /login 200" '[ "$code" = 200 ]'
    check "login page has Sign in + form" 'grep -q "Sign in" "$body" && grep -q "<form method=\"post\" action=\"/login\">" "$body"'
    # signed out
    code=$(c -o /dev/null -w '%{http_code} %{redirect_url}' "$base/")
    check "GET / signed out -> 302 /login (got $code)" '[[ "$code" == "302 "*/login ]]'
    code=$(c -o "$body" -w '%{http_code}' "$base/api/me")
    check "GET /api/me signed out -> 401 (got $code)" '[ "$code" = 401 ]'
    # bad login
    code=$(c -o "$body" -w '%{http_code}' --data-urlencode username=alice --data-urlencode password=wrong "$base/login")
    check "bad login -> 401 (got $code)" '[ "$code" = 401 ] && grep -q "Sign in" "$body"'
    # good login
    code=$(c -D "$hdr" -o /dev/null -w '%{http_code} %{redirect_url}' --data-urlencode username=alice --data-urlencode password=alice-pw "$base/login")
    check "login -> 302 / (got $code)" '[[ "$code" == "302 "*/ ]]'
    check "login response carries X-Idle-User: 42" 'grep -qi "^x-idle-user: 42" "$hdr"'
    # home
    code=$(c -D "$hdr" -o "$body" -w '%{http_code}' "$base/")
    check "GET / signed in -> 200 (got $code)" '[ "$code" = 200 ]'
    check "home says Hello alice" 'grep -q "Hello alice" "$body"'
    check "home has the app script" 'grep -q "window.appScriptRan = true" "$body"'
    check "home carries X-Idle-User: 42" 'grep -qi "^x-idle-user: 42" "$hdr"'
    # poll / api
    out=$(c -D "$hdr" "$base/poll")
    check "poll says user 42 (got $out)" '[[ "$out" == *"\"user\":"*"\"42\""* ]]'
    check "poll carries X-Idle-User: 42" 'grep -qi "^x-idle-user: 42" "$hdr"'
    out=$(c "$base/api/me")
    check "api/me says 42 (got $out)" '[[ "$out" == *"\"42\""* ]]'

    if [ "${DIY_LAST_ACTIVITY:-}" = 1 ] && { [ "$app" = django ] || [ "$app" = php ]; }; then
        out=$(curl -sS "$base/diy/activity")
        check "DIY_LAST_ACTIVITY recorded user 42 (got $out)" '[[ "$out" == *"\"user\": \"42\""* || "$out" == *"\"user\":\"42\""* ]]'
    fi

    # parallel requests of the same session (a page load fetching several things)
    par=$(seq 1 24 | xargs -P 12 -I{} curl -sS -b "$jar" -o /dev/null -w '%{http_code}\n' "$base/api/me" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
    check "24 parallel requests all 200 (got $par)" '[ "$par" = " 24 200;" ]'

    # webhook: valid, duplicate, bad signature, stale timestamp
    wid="msg_smoke_$RANDOM$RANDOM"; ts=$(date +%s)
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    payload='{"type":"session.ended","timestamp":"'"$now"'","data":{"session":"5f2c9a1e7b3d4c60","zone":"smoke","user":"42","reason":"idle","started_at":"2026-11-21T08:00:00Z","last_activity_at":"2026-11-21T09:00:00Z","ended_at":"2026-11-21T09:30:00Z","duration_seconds":3600,"requests":118}}'
    sig=$(sign "$secret" "$wid" "$ts" "$payload")
    post_hook() { curl -sS -o "$body" -w '%{http_code}' -H 'Content-Type: application/json' -H "webhook-id: $1" -H "webhook-timestamp: $2" -H "webhook-signature: $3" --data-binary "$4" "$base/idlegate/webhook"; }
    code=$(post_hook "$wid" "$ts" "v1,$sig" "$payload")
    check "signed webhook accepted (got $code: $(head -c 200 "$body"))" '[[ "$code" == 2* ]]'
    code=$(post_hook "$wid" "$ts" "v1,bm90LXRoZS1zaWduYXR1cmU= v1,$sig" "$payload")
    check "redelivery (same webhook-id, 2nd of two signatures) accepted (got $code)" '[[ "$code" == 2* ]]'
    code=$(post_hook "msg_bad_$RANDOM" "$ts" "v1,$(sign "whsec_$(head -c 24 /dev/urandom | base64 -w0)" "msg_bad" "$ts" "$payload")" "$payload")
    check "wrong signature rejected 400 (got $code)" '[ "$code" = 400 ]'
    code=$(post_hook "$wid-tampered" "$ts" "v1,$sig" "$payload")
    check "signature over another id rejected 400 (got $code)" '[ "$code" = 400 ]'
    old=$((ts - 600)); code=$(post_hook "msg_old" "$old" "v1,$(sign "$secret" msg_old "$old" "$payload")" "$payload")
    check "stale timestamp rejected 400 (got $code)" '[ "$code" = 400 ]'
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST --data-binary "$payload" "$base/idlegate/webhook")
    check "unsigned webhook rejected 400 (got $code)" '[ "$code" = 400 ]'
    events=$(curl -sS "$base/idlegate/events")
    n=$(printf '%s' "$events" | /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin); print(len(e), e[0]["id"] if e else "", e[0]["type"] if e else "", e[0]["data"].get("user") if e else "")' 2>&1)
    check "exactly one event recorded (got $n)" '[ "$n" = "1 $wid session.ended 42" ]'
    usersj=$(curl -sS "$base/idlegate/users")
    u=$(printf '%s' "$usersj" | /usr/bin/python3 -c 'import json,sys; u=json.load(sys.stdin); print(u["42"]["online_seconds"], u["42"]["last_logout_at"], u["43"]["online_seconds"], u["43"]["last_logout_at"])' 2>&1)
    check "user 42 got 3600 online seconds and last_logout_at (got $u)" '[ "$u" = "3600 2026-11-21T09:30:00Z 0 None" ]'
    # 8 different webhooks at once (several sessions ending together), each sent twice
    bobp='{"type":"session.ended","timestamp":"'"$now"'","data":{"session":"0000","zone":"smoke","user":"43","reason":"logout","started_at":"2026-11-21T10:00:00Z","last_activity_at":"2026-11-21T10:00:10Z","ended_at":"2026-11-21T10:00:10Z","duration_seconds":10,"requests":3}}'
    for i in 1 2 3 4 5 6 7 8 1 2 3 4 5 6 7 8; do
        id="msg_par_$i"; echo "$id $(sign "$secret" "$id" "$ts" "$bobp")"
    done > "$work/par"
    par=$(xargs -P 16 -L 1 sh -c 'curl -sS -o /dev/null -w "%{http_code}\n" -H "webhook-id: $0" -H "webhook-timestamp: '"$ts"'" -H "webhook-signature: v1,$1" --data-binary "$2" "'"$base"'/idlegate/webhook"' < <(sed "s|\$| '$bobp'|" "$work/par") | sort | uniq -c | tr -s ' ' | tr '\n' ';')
    check "16 parallel webhook deliveries (8 ids x 2) all 200 (got $par)" '[ "$par" = " 16 200;" ]'
    u=$(curl -sS "$base/idlegate/users" | /usr/bin/python3 -c 'import json,sys; u=json.load(sys.stdin); print(u["43"]["online_seconds"], u["43"]["last_logout_at"])' 2>&1)
    n=$(curl -sS "$base/idlegate/events" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>&1)
    check "user 43 got 8 x 10 s once each, 9 events in all (got $u, $n events)" '[ "$u $n" = "80 2026-11-21T10:00:10Z 9" ]'

    # logout
    code=$(c -D "$hdr" -o /dev/null -w '%{http_code} %{redirect_url}' -X POST "$base/logout")
    check "logout -> 302 /login (got $code)" '[[ "$code" == "302 "*/login ]]'
    check "logout response has no X-Idle-User" '! grep -qi "^x-idle-user:" "$hdr"'
    code=$(c -D "$hdr" -o /dev/null -w '%{http_code} %{redirect_url}' "$base/")
    check "GET / after logout -> 302 /login (got $code)" '[[ "$code" == "302 "*/login ]]'
    check "no X-Idle-User after logout" '! grep -qi "^x-idle-user:" "$hdr"'
    out=$(c "$base/poll")
    check "poll after logout says null (got $out)" '[[ "$out" == *"\"user\":"*null* ]]'

    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    sleep 0.3
    if curl -s -o /dev/null --max-time 1 "$base/login"; then fails+=("still serving after kill $pid"); fi

    if [ ${#fails[@]} -eq 0 ]; then
        echo "PASS $app (port $port, up in $startup)"
        rm -rf "$work"
    else
        overall=1
        echo "FAIL $app (port $port, up in $startup; log and state in $work)"
        printf '    - %s\n' "${fails[@]}"
    fi
done
exit $overall
