#!/usr/bin/env bash
# Parallax on Airflow's CeleryExecutor with a DuckLake warehouse, all on 127.0.0.1, no containers.
#
#   scripts/airflow-celery.sh            # start (foreground; Ctrl-C / SIGTERM stops everything)
#   PARALLAX_AIRFLOW_PORT=8181 scripts/airflow-celery.sh
#
# Starts, with state under var/scale (PARALLAX_SCALE_DIR):
#   - PostgreSQL (Debian's postgresql): database `airflow` (Airflow metadata, Celery results) and
#     database `parallax_lake` (the DuckLake catalog); the lake's Parquet files under lake-data/
#     (or PARALLAX_WAREHOUSE_DATA_PATH, e.g. a shared directory or s3://bucket/prefix);
#   - Redis (Debian's redis-server) as the Celery broker;
#   - Airflow api-server, scheduler, dag-processor and two Celery workers: `worker-default`
#     (queue `default`) and `worker-translate` (queue `translate` only, where GPU workers sit;
#     parallax_translate's model task is routed there).
# Missing Debian packages are installed with apt-get when run as root. On Ctrl-C / SIGTERM every
# component's process group gets SIGTERM, then SIGKILL after a grace period, then Redis and
# PostgreSQL stop. Ports: PARALLAX_AIRFLOW_PORT (8080), PARALLAX_PG_PORT (5433),
# PARALLAX_REDIS_PORT (6380), PARALLAX_SAMPLE_PORT (8765, the bundled sample when no
# PARALLAX_OUTLETS is given).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PARALLAX_VENV:-$ROOT/.venv}"
if [[ ! -x "$VENV/bin/airflow" ]]; then
    echo "airflow not found in $VENV: run scripts/setup-venv.sh and pip install -e '.[scale]'" >&2
    exit 1
fi
export PATH="$VENV/bin:$PATH"
STATE="$(mkdir -p "${PARALLAX_SCALE_DIR:-$ROOT/var/scale}" && cd "${PARALLAX_SCALE_DIR:-$ROOT/var/scale}" && pwd)"
PORT="${PARALLAX_AIRFLOW_PORT:-8080}"
PG_PORT="${PARALLAX_PG_PORT:-5433}"
REDIS_PORT="${PARALLAX_REDIS_PORT:-6380}"
SAMPLE_PORT="${PARALLAX_SAMPLE_PORT:-8765}"
LOGS="$STATE/logs"
mkdir -p "$LOGS"

# ---- Debian packages (PostgreSQL, Redis)
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [[ -z "$PG_BIN" || ! -x "$(command -v redis-server || true)" ]]; then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "PostgreSQL and Redis needed: sudo apt-get install postgresql redis-server" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
as_pg() {  # PostgreSQL refuses to run as root: run its binaries as the postgres user then
    if [[ "$(id -u)" -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ---- stop everything this script started, in reverse order
set -m   # each background job gets its own process group, with SIGINT/SIGTERM not ignored
PGIDS=()
PG_STARTED=""
stop() {
    trap - INT TERM EXIT
    echo "parallax: stopping Airflow, Celery workers, Redis and PostgreSQL"
    local pgid deadline
    for pgid in "${PGIDS[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
    deadline=$((SECONDS + ${PARALLAX_AIRFLOW_STOP_GRACE_S:-20}))
    for pgid in "${PGIDS[@]}"; do
        while kill -0 -- "-$pgid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
        kill -KILL -- "-$pgid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [[ -n "$PG_STARTED" ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$STATE/pg" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    echo "parallax: stopped"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# ---- PostgreSQL: metadata and DuckLake catalog, separate databases
if [[ "$(id -u)" -eq 0 ]]; then chown postgres "$STATE"; fi
if [[ ! -s "$STATE/pg/PG_VERSION" ]]; then
    as_pg "$PG_BIN/initdb" -D "$STATE/pg" -A trust -U postgres >"$LOGS/initdb.out"
fi
as_pg "$PG_BIN/pg_ctl" -D "$STATE/pg" -l "$STATE/pg/postgresql.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$STATE -c max_connections=200" \
    start >/dev/null
PG_STARTED=1
python - "$PG_PORT" <<'PY'
import sys, psycopg2
con = psycopg2.connect(f"dbname=postgres host=127.0.0.1 port={sys.argv[1]} user=postgres")
con.autocommit = True
with con.cursor() as cur:
    for db in ("airflow", "parallax_lake"):
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{db}"')
PY

# ---- Redis: the Celery broker (no persistence: queued work lives in the metadata database)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$STATE" \
    >"$LOGS/redis.out" 2>&1 &
PGIDS+=("$!")

# ---- Airflow and Parallax configuration
export AIRFLOW_HOME="${AIRFLOW_HOME:-$STATE/airflow}"
export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://postgres@127.0.0.1:$PG_PORT/airflow"
export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$REDIS_PORT/0"
export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://postgres@127.0.0.1:$PG_PORT/airflow"
export AIRFLOW__CELERY__WORKER_CONCURRENCY="${AIRFLOW__CELERY__WORKER_CONCURRENCY:-4}"
export AIRFLOW__OPERATORS__DEFAULT_QUEUE=default
# Workers talk to the api-server's execution API; 5 s (Airflow's default) is short on a busy host.
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-30}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-8}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}"
export AIRFLOW__CORE__HOSTNAME_CALLABLE=pipeline.airflow_setup.worker_hostname
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$PORT/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export PARALLAX_ROOT="${PARALLAX_ROOT:-$ROOT}"
export PARALLAX_WAREHOUSE="${PARALLAX_WAREHOUSE:-ducklake:postgres:dbname=parallax_lake host=127.0.0.1 port=$PG_PORT user=postgres}"
export PARALLAX_WAREHOUSE_DATA_PATH="${PARALLAX_WAREHOUSE_DATA_PATH:-$STATE/lake-data}"
export PARALLAX_RUNTIME_DIR="${PARALLAX_RUNTIME_DIR:-$STATE/runtime}"
export PARALLAX_TRANSLATE_QUEUE="${PARALLAX_TRANSLATE_QUEUE:-translate}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$AIRFLOW_HOME" "$PARALLAX_RUNTIME_DIR"

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

echo "parallax: state in $STATE; warehouse $PARALLAX_WAREHOUSE (data $PARALLAX_WAREHOUSE_DATA_PATH)"
airflow db migrate >"$LOGS/db-migrate.out" 2>&1
python -m pipeline.airflow_setup   # pools; the warehouse pool gets one slot per lake writer
python -c 'from pipeline import warehouse; from pipeline.settings import load_settings
with warehouse.open_warehouse(load_settings()): pass'   # the lake schema, before any worker

for component in api-server scheduler dag-processor; do
    airflow "$component" >"$LOGS/$component.out" 2>&1 &
    PGIDS+=("$!")
done
# Two workers; each serves its task logs on its own port. The translate worker takes only the
# translate queue (one model task at a time), the default worker everything else.
AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${PARALLAX_WORKER_LOG_PORT:-8793}" \
PARALLAX_WORKER_NAME=worker-default \
    airflow celery worker --queues default --celery-hostname "worker-default@%h" \
    >"$LOGS/worker-default.out" 2>&1 &
PGIDS+=("$!")
AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${PARALLAX_TRANSLATE_LOG_PORT:-8794}" \
PARALLAX_WORKER_NAME=worker-translate \
    airflow celery worker --queues "$PARALLAX_TRANSLATE_QUEUE" --concurrency 1 \
    --celery-hostname "worker-translate@%h" >"$LOGS/worker-translate.out" 2>&1 &
PGIDS+=("$!")
if [[ -z "${PARALLAX_OUTLETS:-}" ]]; then
    parallax serve-sample --port "$SAMPLE_PORT" >"$LOGS/sample-server.out" 2>&1 &
    PGIDS+=("$!")
fi

for _ in $(seq 1 180); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/api/v2/monitor/health" 2>/dev/null; then break; fi
    sleep 1
done
cat <<MSG
parallax: Airflow UI  http://127.0.0.1:$PORT   login: admin   password: $PASSWORD
parallax: CeleryExecutor, broker redis://127.0.0.1:$REDIS_PORT, metadata and lake catalog in
          PostgreSQL 127.0.0.1:$PG_PORT; workers: worker-default (default), worker-translate ($PARALLAX_TRANSLATE_QUEUE)
parallax: logs in $LOGS; DAGs start paused: AIRFLOW_HOME=$AIRFLOW_HOME airflow dags unpause parallax_ingest
parallax: Ctrl-C stops every component.
MSG
# Return when any component exits (a crash stops the rest too), or on Ctrl-C / SIGTERM.
wait -n
echo "parallax: a component exited; see $LOGS" >&2
exit 1
