#!/usr/bin/env bash
# `make run`: Azurite (storage), pubsubhost (the Web PubSub stand-in) and funchost (the
# Functions host stand-in) on loopback. Azurite's data lives in .azurite/, its log in
# .azurite/azurite.log; pubsubhost logs to .azurite/pubsubhost.log.
#
# The live stream: pubsubhost gets a fresh access key each start and sends the hub's events to
# the app's /api/webpubsub/events; the app gets its connection string
# (QCOS_WEBPUBSUB_CONNECTION_STRING), and funchost proxies ws://HOST:PORT/api/v2/network/stream
# to the hub.
#
# Ctrl-C stops everything within 3 s: funchost gives in-flight invocations 2 s, then exits
# anyway (their queue messages were not deleted: they run again on the next start); a second
# Ctrl-C cuts that short. Each server runs in a session of its own, so the terminal's Ctrl-C
# reaches this script only, and at the end each server's whole process group goes, whatever
# it started (a simulator's worker processes, say).
#
# FUNCHOST_PORT (7071), PUBSUB_PORT (7080) and AZURITE_PORTS ("10000 10001 10002": blob, queue, table) move them;
# with other Azurite ports, AzureWebJobsStorage (unless set) names them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

HOST=127.0.0.1
PORT=${FUNCHOST_PORT:-7071}
read -r -a STORAGE_PORTS <<<"${AZURITE_PORTS:-10000 10001 10002}" # blob, queue, table
((${#STORAGE_PORTS[@]} == 3)) || {
    echo "run: AZURITE_PORTS must name three ports (blob, queue, table)" >&2
    exit 1
}
PUBSUB_PORT=${PUBSUB_PORT:-7080}
HUB=${QCOS_WEBPUBSUB_HUB:-qcos}
PY=$ROOT/.venv/bin/python
FUNCHOST=$ROOT/.venv/bin/funchost
PUBSUBHOST=$ROOT/.venv/bin/pubsubhost
AZURITE_BIN=${AZURITE_BIN:-$ROOT/node_modules/.bin/azurite}
KEY_FILE=$ROOT/.qcos/admin-key

die() {
    echo "run: $*" >&2
    exit 1
}

for tool in "$PY" "$FUNCHOST" "$PUBSUBHOST" "$AZURITE_BIN"; do
    [[ -x $tool ]] || die "$tool is missing; run 'make setup' (or 'make run', which does it)"
done

# True when something accepts connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

for port in "${STORAGE_PORTS[@]}" "$PORT" "$PUBSUB_PORT"; do
    if port_open "$port"; then
        die "port $port on $HOST is already in use (another Azurite, pubsubhost or host running?); stop it first"
    fi
done

AZURITE_PID=
PUBSUB_PID=
FUNCHOST_PID=
STOP_STARTED=

# Milliseconds since the epoch.
now_ms() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local micros=${EPOCHREALTIME/[.,]/}
        echo $((micros / 1000))
    else
        echo $(($(date +%s) * 1000))
    fi
}

# Wait until process $1 has exited, or the time is $2 (ms); then end its whole process group.
stop_group_by() {
    local pid=$1 deadline=$2
    while kill -0 "$pid" 2>/dev/null && (($(now_ms) < deadline)); do
        sleep 0.05 || true
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A second Ctrl-C while stopping: funchost skips the rest of its grace period.
hurry() {
    [[ -z $FUNCHOST_PID ]] || kill -INT "$FUNCHOST_PID" 2>/dev/null || true
}

cleanup() {
    local status=$?
    set +e # a command failing (a `sleep` a second Ctrl-C interrupts) must not end the cleanup
    trap - EXIT
    trap hurry INT TERM HUP
    STOP_STARTED=$(now_ms)
    # pubsubhost closes its clients' connections while funchost finishes its invocations.
    [[ -z $PUBSUB_PID ]] || kill -TERM "$PUBSUB_PID" 2>/dev/null
    if [[ -n $FUNCHOST_PID ]]; then
        kill -INT "$FUNCHOST_PID" 2>/dev/null
        stop_group_by "$FUNCHOST_PID" $((STOP_STARTED + 2700))
        FUNCHOST_PID=
    fi
    if [[ -n $PUBSUB_PID ]]; then
        stop_group_by "$PUBSUB_PID" $((STOP_STARTED + 2700))
        PUBSUB_PID=
    fi
    if [[ -n $AZURITE_PID ]]; then
        # Azurite saves its data as it closes; it writes "... successfully closed" for each of
        # its three services, then idles for a second or two before it exits.
        kill -TERM "$AZURITE_PID" 2>/dev/null
        local deadline=$((STOP_STARTED + 2900))
        local closed
        while kill -0 "$AZURITE_PID" 2>/dev/null && (($(now_ms) < deadline)); do
            closed=$(grep -c "successfully closed" "$ROOT/.azurite/azurite.log" 2>/dev/null)
            ((${closed:-0} >= 3)) && break
            sleep 0.05 || true
        done
        stop_group_by "$AZURITE_PID" 0
        AZURITE_PID=
    fi
    exit "$status"
}
trap cleanup INT TERM HUP EXIT

# A prefix that runs a command (by exec: the same pid, so $! is its pid) as the leader of a
# new session, with SIGINT handled as usual (a background job of a script starts with it
# ignored).
IN_OWN_SESSION=("$PY" -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execv(sys.argv[1], sys.argv[1:])')

# --- storage -----------------------------------------------------------------------------------
mkdir -p .azurite
echo "run: starting Azurite on $HOST:${STORAGE_PORTS[0]}-${STORAGE_PORTS[2]} (data in .azurite/)"
"${IN_OWN_SESSION[@]}" "$AZURITE_BIN" \
    --location "$ROOT/.azurite" \
    --blobHost "$HOST" --blobPort "${STORAGE_PORTS[0]}" \
    --queueHost "$HOST" --queuePort "${STORAGE_PORTS[1]}" \
    --tableHost "$HOST" --tablePort "${STORAGE_PORTS[2]}" \
    --skipApiVersionCheck --loose --disableTelemetry \
    >"$ROOT/.azurite/azurite.log" 2>&1 &
AZURITE_PID=$!

deadline=$((SECONDS + 60))
for port in "${STORAGE_PORTS[@]}"; do
    until port_open "$port"; do
        kill -0 "$AZURITE_PID" 2>/dev/null || {
            tail -n 20 "$ROOT/.azurite/azurite.log" >&2 || true
            die "Azurite exited; its log is .azurite/azurite.log"
        }
        ((SECONDS < deadline)) || die "Azurite did not open port $port within 60 s"
        sleep 0.2
    done
done
echo "run: Azurite is up"

# --- settings ----------------------------------------------------------------------------------
if [[ ! -f local.settings.json ]]; then
    cp local.settings.json.example local.settings.json
    echo "run: created local.settings.json from local.settings.json.example"
fi

settings_have_admin_key() {
    "$PY" - <<'PYEOF'
import json, sys
try:
    with open("local.settings.json", encoding="utf-8") as fh:
        values = json.load(fh).get("Values") or {}
except (OSError, ValueError):
    sys.exit(1)
sys.exit(0 if values.get("QCOS_ADMIN_API_KEY") else 1)
PYEOF
}

if [[ -z ${QCOS_ADMIN_API_KEY:-} ]] && ! settings_have_admin_key; then
    if [[ ! -s $KEY_FILE ]]; then
        mkdir -p "$(dirname "$KEY_FILE")"
        chmod 700 "$(dirname "$KEY_FILE")"
        (
            umask 077
            "$PY" -c 'import secrets; print("qcos_admin_" + secrets.token_urlsafe(32))' >"$KEY_FILE.tmp"
            mv "$KEY_FILE.tmp" "$KEY_FILE"
        )
        echo "run: generated an admin API key"
    fi
    chmod 600 "$KEY_FILE"
    QCOS_ADMIN_API_KEY=$(<"$KEY_FILE")
    export QCOS_ADMIN_API_KEY
    echo "run: admin API key (QCOS_ADMIN_API_KEY) is in $KEY_FILE"
fi

if [[ -z ${AzureWebJobsStorage:-} && "${STORAGE_PORTS[*]}" != "10000 10001 10002" ]]; then
    account=devstoreaccount1
    AzureWebJobsStorage="DefaultEndpointsProtocol=http;AccountName=$account;"
    AzureWebJobsStorage+="AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    AzureWebJobsStorage+="BlobEndpoint=http://$HOST:${STORAGE_PORTS[0]}/$account;"
    AzureWebJobsStorage+="QueueEndpoint=http://$HOST:${STORAGE_PORTS[1]}/$account;"
    AzureWebJobsStorage+="TableEndpoint=http://$HOST:${STORAGE_PORTS[2]}/$account;"
    export AzureWebJobsStorage
fi

# --- Web PubSub ------------------------------------------------------------------------------
PUBSUB_KEY=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(32))')
echo "run: starting the Web PubSub stand-in on $HOST:$PUBSUB_PORT (hub $HUB)"
PUBSUBHOST_ACCESS_KEY=$PUBSUB_KEY "${IN_OWN_SESSION[@]}" "$PUBSUBHOST" \
    --host "$HOST" --port "$PUBSUB_PORT" \
    --upstream "$HUB=http://$HOST:$PORT/api/webpubsub/events" \
    >"$ROOT/.azurite/pubsubhost.log" 2>&1 &
PUBSUB_PID=$!
deadline=$((SECONDS + 30))
until port_open "$PUBSUB_PORT"; do
    kill -0 "$PUBSUB_PID" 2>/dev/null || {
        tail -n 20 "$ROOT/.azurite/pubsubhost.log" >&2 || true
        die "pubsubhost exited; its log is .azurite/pubsubhost.log"
    }
    ((SECONDS < deadline)) || die "pubsubhost did not open port $PUBSUB_PORT within 30 s"
    sleep 0.1
done
QCOS_WEBPUBSUB_CONNECTION_STRING="Endpoint=http://$HOST;Port=$PUBSUB_PORT;AccessKey=$PUBSUB_KEY;Version=1.0;"
QCOS_WEBPUBSUB_HUB=$HUB
FUNCHOST_WEBPUBSUB_ROUTES="api/v2/network/stream=$HUB"
FUNCHOST_WEBPUBSUB_CONNECTION=QCOS_WEBPUBSUB_CONNECTION_STRING
export QCOS_WEBPUBSUB_CONNECTION_STRING QCOS_WEBPUBSUB_HUB FUNCHOST_WEBPUBSUB_ROUTES FUNCHOST_WEBPUBSUB_CONNECTION
echo "run: Web PubSub stand-in is up; the stream is ws://$HOST:$PORT/api/v2/network/stream"

# --- host --------------------------------------------------------------------------------------
echo "run: starting the function app on http://$HOST:$PORT (Ctrl-C stops it and Azurite)"
"${IN_OWN_SESSION[@]}" "$FUNCHOST" start --app-dir "$ROOT" --port "$PORT" --host "$HOST" &
FUNCHOST_PID=$!
# `wait` returns early when a trapped signal arrives, so Ctrl-C reaches cleanup at once.
status=0
wait "$FUNCHOST_PID" || status=$?
exit "$status" # cleanup still ends what funchost left in its process group, pubsubhost and Azurite
