#!/usr/bin/env bash
# Several Celery workers on this machine, laid out as in production (docs/scaling.md):
#   INTERACTIVE_WORKERS (default 1) workers that consume only the interactive queue
#     (imports of small files, previews, sends, the platform's periodic tasks),
#   HEAVY_WORKERS (default 1) workers that consume only the heavy queue (pipeline steps
#     and exports of big organisations, imports of big files),
#   one scheduler (celery beat) unless BEAT=0 — start exactly one per installation.
# CONCURRENCY (default 1) pool processes per worker; LOG_DIR (default var) holds
# worker-<name>.log. Each worker is supervised (started again 3 s after it exits, and on
# start it recovers the jobs a dead worker left running). Runs in the foreground:
# Ctrl+C or SIGTERM stops every process it started.
#   bash scripts/workers.sh                       # 1 interactive + 1 heavy + beat
#   INTERACTIVE_WORKERS=2 HEAVY_WORKERS=1 CONCURRENCY=1 bash scripts/workers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
INTERACTIVE_WORKERS="${INTERACTIVE_WORKERS:-1}"
HEAVY_WORKERS="${HEAVY_WORKERS:-1}"
CONCURRENCY="${CONCURRENCY:-1}"
BEAT="${BEAT:-1}"
LOG_DIR="${LOG_DIR:-var}"
LOGLEVEL="${LOGLEVEL:-WARNING}"
Q_INTERACTIVE="${JOB_QUEUE_INTERACTIVE:-interactive}"
Q_HEAVY="${JOB_QUEUE_HEAVY:-heavy}"
mkdir -p "$LOG_DIR"

supervise() {  # supervise NAME COMMAND...
  local name=$1 child=""
  shift
  trap 'if [ -n "$child" ]; then kill -TERM -- "-$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi; exit 0' INT TERM
  while true; do
    # A process group of its own, so its pool processes die with it.
    setsid "$@" >>"$LOG_DIR/worker-$name.log" 2>&1 &
    child=$!
    status=0
    wait "$child" || status=$?
    kill -KILL -- "-$child" 2>/dev/null || true
    child=""
    echo "$(date -u +%FT%TZ) $name exited (status ${status}); starting it again in 3 s" >>"$LOG_DIR/worker-$name.log"
    sleep 3
  done
}

SUPERVISORS=()
start() {  # start NAME COMMAND...
  supervise "$@" &
  SUPERVISORS+=($!)
  echo "started $1 (log: $LOG_DIR/worker-$1.log)"
}

stop_all() {
  for pid in "${SUPERVISORS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SUPERVISORS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 0' INT TERM

for i in $(seq 1 "$INTERACTIVE_WORKERS"); do
  start "interactive-$i" .venv/bin/celery -A config worker -Q "$Q_INTERACTIVE" \
    -n "interactive-$i@%h" --concurrency "$CONCURRENCY" --loglevel "$LOGLEVEL"
done
for i in $(seq 1 "$HEAVY_WORKERS"); do
  start "heavy-$i" .venv/bin/celery -A config worker -Q "$Q_HEAVY" \
    -n "heavy-$i@%h" --concurrency "$CONCURRENCY" --loglevel "$LOGLEVEL"
done
if [ "$BEAT" != 0 ]; then
  start beat .venv/bin/celery -A config beat --loglevel "$LOGLEVEL" \
    --schedule "$LOG_DIR/celery-beat-schedule"
fi
wait
