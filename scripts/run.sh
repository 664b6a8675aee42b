#!/usr/bin/env bash
# `make run`: Azurite (storage) and funchost (the Functions host stand-in) on loopback.
# Ctrl-C stops both. Azurite's data lives in .azurite/, its log in .azurite/azurite.log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

HOST=127.0.0.1
PORT=7071
STORAGE_PORTS=(10000 10001 10002) # blob, queue, table
PY=$ROOT/.venv/bin/python
FUNCHOST=$ROOT/.venv/bin/funchost
AZURITE_BIN=${AZURITE_BIN:-$ROOT/node_modules/.bin/azurite}
KEY_FILE=$ROOT/.qcos/admin-key

die() {
    echo "run: $*" >&2
    exit 1
}

for tool in "$PY" "$FUNCHOST" "$AZURITE_BIN"; do
    [[ -x $tool ]] || die "$tool is missing; run 'make setup' (or 'make run', which does it)"
done

# True when something accepts connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

for port in "${STORAGE_PORTS[@]}" "$PORT"; do
    if port_open "$port"; then
        die "port $port on $HOST is already in use (another Azurite or host running?); stop it first"
    fi
done

AZURITE_PID=
FUNCHOST_PID=
cleanup() {
    local status=$?
    trap - INT TERM EXIT
    local pid waited
    for pid in $FUNCHOST_PID $AZURITE_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $FUNCHOST_PID $AZURITE_PID; do
        waited=0
        while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    exit "$status"
}
trap cleanup INT TERM EXIT

# --- storage -----------------------------------------------------------------------------------
mkdir -p .azurite
echo "run: starting Azurite on $HOST:${STORAGE_PORTS[0]}-${STORAGE_PORTS[2]} (data in .azurite/)"
"$AZURITE_BIN" \
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

# --- host --------------------------------------------------------------------------------------
echo "run: starting the function app on http://$HOST:$PORT (Ctrl-C stops it and Azurite)"
"$FUNCHOST" start --app-dir "$ROOT" --port "$PORT" --host "$HOST" &
FUNCHOST_PID=$!
# `wait` returns early when a trapped signal arrives, so Ctrl-C reaches cleanup at once.
status=0
wait "$FUNCHOST_PID" || status=$?
FUNCHOST_PID=
exit "$status"
