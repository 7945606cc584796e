#!/usr/bin/env bash
# Run Airflow locally for the Parallax DAGs: UI and API on 127.0.0.1 only, state in var/airflow.
#
#   scripts/airflow-local.sh            # start (foreground; Ctrl-C stops every component)
#   PARALLAX_AIRFLOW_PORT=8181 scripts/airflow-local.sh
#
# Starts api-server, scheduler (LocalExecutor, SQLite) and dag-processor, each in its own process
# group, and on Ctrl-C / SIGTERM stops each group: SIGTERM, then SIGKILL after a grace period.
# (`airflow standalone` leaves the scheduler and its LocalExecutor workers behind when stopped.)
# Parallax settings (PARALLAX_WAREHOUSE, PARALLAX_OUTLETS, ...) pass through to the tasks.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PARALLAX_VENV:-$ROOT/.venv}"
if [[ ! -x "$VENV/bin/airflow" ]]; then
    echo "airflow not found in $VENV: run scripts/setup-venv.sh (with the airflow extra) first" >&2
    exit 1
fi
export PATH="$VENV/bin:$PATH"

PORT="${PARALLAX_AIRFLOW_PORT:-8080}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-4}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export PARALLAX_ROOT="${PARALLAX_ROOT:-$ROOT}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$AIRFLOW_HOME"

# A stable admin password, generated once and kept in AIRFLOW_HOME (ignored by git).
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$PASSWORDS"
if [[ ! -s "$PASSWORDS" ]]; then
    ( umask 077; python - "$PASSWORDS" <<'PY'
import json, secrets, sys
with open(sys.argv[1], "w") as fh:
    json.dump({"admin": secrets.token_urlsafe(12)}, fh)
PY
    )
fi
PASSWORD="$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$PASSWORDS")"

echo "parallax: AIRFLOW_HOME=$AIRFLOW_HOME, DAGs from $AIRFLOW__CORE__DAGS_FOLDER"
airflow db migrate >/dev/null
python -m pipeline.airflow_setup

set -m   # each background job gets its own process group, with SIGINT/SIGTERM not ignored
PGIDS=()
stop() {
    trap - INT TERM EXIT
    echo "parallax: stopping Airflow components"
    local pgid deadline
    for pgid in "${PGIDS[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
    deadline=$((SECONDS + ${PARALLAX_AIRFLOW_STOP_GRACE_S:-20}))
    for pgid in "${PGIDS[@]}"; do
        while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
        kill -KILL -- "-$pgid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    echo "parallax: stopped"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

LOGS="$AIRFLOW_HOME/logs"
mkdir -p "$LOGS"
for component in api-server scheduler dag-processor; do
    airflow "$component" >"$LOGS/$component.out" 2>&1 &
    PGIDS+=("$!")
done
# With the default outlets (the bundled sample), serve the sample on 127.0.0.1:8765 too.
if [[ -z "${PARALLAX_OUTLETS:-}" ]]; then
    parallax serve-sample --port 8765 >"$LOGS/sample-server.out" 2>&1 &
    PGIDS+=("$!")
fi

for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/v2/monitor/health" 2>/dev/null; then break; fi
    sleep 1
done
cat <<MSG
parallax: Airflow UI  http://127.0.0.1:$PORT   login: admin   password: $PASSWORD
parallax: component logs in $LOGS/*.out; DAGs start paused: unpause them in the UI or with
          AIRFLOW_HOME=$AIRFLOW_HOME airflow dags unpause parallax_ingest (and parallax_translate, parallax_align)
parallax: Ctrl-C stops every component.
MSG
# Return when any component exits (a crash stops the rest too), or on Ctrl-C / SIGTERM.
wait -n
echo "parallax: a component exited; see $LOGS" >&2
exit 1
