#!/usr/bin/env bash
# Start the background worker (with the nightly scheduler) and the site; stop both together.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8000}"
mkdir -p var
.venv/bin/celery -A config worker --beat --loglevel WARNING --concurrency 1 \
  --schedule var/celery-beat-schedule >var/worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true; wait $WORKER 2>/dev/null || true' EXIT INT TERM
cat <<MSG

  Segmenta is running at http://127.0.0.1:${PORT}/
  Sign in as demo@segmenta.local with the password segmenta-demo
  Background worker log: var/worker.log   (stop everything with Ctrl+C)

MSG
.venv/bin/python manage.py runserver "127.0.0.1:${PORT}" --noreload
