#!/usr/bin/env bash
# Start the background worker (with the nightly scheduler) and the site; stop both together.
# The worker is supervised: if it exits (a crash, an "Unrecoverable error" of the broker,
# killed by the system), it is started again after a short pause, and on start it picks
# up the jobs the dead one left running. Ctrl+C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
mkdir -p var

supervise_worker() {
  local child=""
  # Each worker runs in a process group of its own (setsid), so that when it dies the
  # scheduler and pool processes it started die with it: an orphaned scheduler would
  # go on queueing the nightly run beside the new worker's.
  trap 'if [ -n "$child" ]; then kill -TERM -- "-$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi; exit 0' INT TERM
  while true; do
    # Both queues (fair scheduling, core/jobs.py): one worker does everything here;
    # production runs interactive-only workers beside heavy ones (scripts/workers.sh).
    setsid .venv/bin/celery -A config worker --beat --loglevel WARNING --concurrency 1 \
      -Q "${JOB_QUEUE_INTERACTIVE:-interactive},${JOB_QUEUE_HEAVY:-heavy}" \
      --schedule var/celery-beat-schedule >>var/worker.log 2>&1 &
    child=$!
    status=0
    wait "$child" || status=$?
    kill -KILL -- "-$child" 2>/dev/null || true
    child=""
    echo "$(date -u +%FT%TZ) worker exited (status ${status}); starting it again in 3 s" >>var/worker.log
    sleep 3
  done
}

supervise_worker &
SUPERVISOR=$!
trap 'kill $SUPERVISOR 2>/dev/null || true; wait $SUPERVISOR 2>/dev/null || true' EXIT INT TERM
cat <<MSG

  Segmenta is running at http://127.0.0.1:${PORT}/
  Sign in as demo@segmenta.local with the password segmenta-demo
  Back office: http://127.0.0.1:${PORT}/admin/ as staff@segmenta.local, password segmenta-staff
  Background worker log: var/worker.log   (stop everything with Ctrl+C)

MSG
.venv/bin/python manage.py runserver "127.0.0.1:${PORT}" --noreload
