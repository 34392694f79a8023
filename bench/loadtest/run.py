"""Load test of the production setup on this machine, one command:

    DATABASE_URL=postgres://segmenta_app:…/DB DATABASE_OWNER_URL=… DATABASE_PLATFORM_URL=… \\
    REDIS_URL=redis://127.0.0.1:6379/N  .venv/bin/python bench/loadtest/run.py \\
        [--users 40] [--spawn-rate 4] [--run-time 5m] [--small-orgs 50] [--big-name "Bench 1M"] \\
        [--port 8108] [--web-workers 4] [--interactive-workers 1] [--mixed-workers 1] \\
        [--heavy-workers 1] [--small-pipelines 50] [--no-pipelines] [--redis-db N] [--out DIR]

(here: `source /work/hx.sh big && pgenv .venv/bin/python bench/loadtest/run.py --redis-db 8`).

1. Prepares the data if missing (bench/loadtest/prepare.py): the big organisation (found by
   name; made by `bench/_bigorg.py --customers 1000000`), 50 small ones (200..2,000
   customers, an owner, a write API key, a first pipeline run and an audience each).
2. Starts the production setup, all on loopback: gunicorn (`config.wsgi`, sync workers,
   DJANGO_ENV=production, DEBUG off, static files through whitenoise), Celery workers
   (`--concurrency 1`: interactive-only, interactive+heavy and heavy-only, the first with
   the beat scheduler), PostgreSQL as the application role, Redis (broker and cache).
   Mail goes to Django's locmem backend (EMAIL_URL=memorymail://): nothing leaves.
3. Queues the pipelines of the big organisation and of the small ones (as `run_pipeline`
   without --sync), then runs Locust headless against http://127.0.0.1:PORT for the
   bounded time (bench/loadtest/locustfile.py: owners browsing pages, integrations reading
   single records and posting bulk upserts, small imports, a campaign sending).
4. Writes DIR (default var/loadtest/run-<time>): locust_stats.csv (Locust's CSV),
   locust_groups.json (exact percentiles per group; baseline_* the same for the baseline), jobs.json (the jobs that ran meanwhile),
   load.json (load average every 5 s), report.md (all of it as tables) and the servers'
   logs; prints report.md.
5. Stops everything it started, also on failure or Ctrl+C (each server in its own process
   group, SIGTERM then SIGKILL), and cancels the load test's unfinished jobs.

Targets (issue 15): zero errors; p95 < 300 ms for pages and < 150 ms for single-record API
calls while the jobs run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
BIN = Path(PY).parent

_procs: list[tuple[str, subprocess.Popen]] = []


def log(msg: str) -> None:
    print(f"[loadtest {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start(name: str, cmd: list[str], env: dict, out: Path) -> subprocess.Popen:
    fh = open(out / f"{name}.log", "ab")
    p = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )
    _procs.append((name, p))
    log(f"started {name} (pid {p.pid}): {' '.join(cmd)}")
    return p


def stop_all(grace: float = 20.0) -> None:
    """SIGTERM every process group this run started, then SIGKILL what is left."""
    for _name, p in _procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    end = time.monotonic() + grace
    for _name, p in _procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for name, p in _procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group: pool processes and beat too
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait(timeout=5)
        log(f"stopped {name} (pid {p.pid}, exit {p.returncode})")
    _procs.clear()


def run_step(
    cmd: list[str], env: dict, *, out: Path | None = None, timeout: float | None = None
) -> str:
    """A short-lived child (prepare.py): its stdout; stderr goes through."""
    p = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, start_new_session=True, text=True
    )
    _procs.append((Path(cmd[1]).name + " " + cmd[2], p))
    try:
        stdout, _ = p.communicate(timeout=timeout)
    finally:
        _procs.remove(next(x for x in _procs if x[1] is p))
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[1:3])} failed (exit {p.returncode})")
    return stdout


def wait_http(url: str, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        for name, p in _procs:
            if p.poll() is not None:
                raise SystemExit(f"{name} exited ({p.returncode}) while starting: see its log")
        time.sleep(1)
    raise SystemExit(f"{url} did not answer in {timeout:.0f} s")


def locust(
    prefix: str, users: int, rate: float, run_time: str, mix: str, env: dict, out: Path
) -> None:
    """Locust headless against the local gunicorn, waited for; CSV out/<prefix>_*.csv."""
    env = {**env, "LOADTEST_MIX": mix, "LOADTEST_GROUPS": str(out / f"{prefix}_groups.json")}
    log(f"{prefix}: {users} users ({mix}) for {run_time} against {env['LOADTEST_HOST']}")
    p = start(
        prefix,
        [
            str(BIN / "locust"),
            "-f",
            str(HERE / "locustfile.py"),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(rate),
            "--run-time",
            run_time,
            "--host",
            env["LOADTEST_HOST"],
            "--csv",
            str(out / prefix),
            "--only-summary",
            "--stop-timeout",
            "30",
            "--exit-code-on-error",
            "0",
            "--loglevel",
            "WARNING",
        ],
        env,
        out,
    )
    p.wait()


class LoadSampler(threading.Thread):
    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self._stop = every, [], threading.Event()

    def run(self):
        while not self._stop.is_set():
            self.samples.append([round(time.time(), 1), *[round(x, 2) for x in os.getloadavg()]])
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()


def cpu_by_group() -> dict[str, float]:
    """CPU seconds (user + system) used so far by each started server's process group."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {p.pid: name for name, p in _procs}
    used = dict.fromkeys(groups.values(), 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pgrp = int(fields[2])
        if pgrp in groups:  # utime, stime (of the process; children it waited for too)
            used[groups[pgrp]] += (
                int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
            ) / tick
    return used


def _redis_db(url: str, db: int | None) -> str:
    if db is None:
        return url
    base = url.rsplit("/", 1)[0] if url.count("/") >= 3 else url
    return f"{base}/{db}"


# --- the report ---------------------------------------------------------------------------

BASELINE_MIX = "owner=2,reader=1,bulk=1,importer=0,campaign=0"
GROUPS = [
    ("page", "Pages (signed-in owners)"),
    ("page big", "… of the big organisation"),
    ("page small", "… of the small ones"),
    ("api", "Single-record API"),
    ("bulk", "Bulk API (100 records a call)"),
    ("write", "Other API writes (imports, campaigns)"),
]


def _f(x, nd=0):
    if x in (None, "", "N/A"):
        return "–"
    return f"{float(x):,.{nd}f}"


def report(out: Path, meta: dict) -> str:
    rows = list(csv.DictReader(open(out / "locust_stats.csv")))

    def _groups(name: str) -> dict:
        path = out / name
        return json.loads(path.read_text())["groups"] if path.exists() else {}

    groups, base = _groups("locust_groups.json"), _groups("baseline_groups.json")
    brows = (
        {r["Name"]: r for r in csv.DictReader(open(out / "baseline_stats.csv"))}
        if (out / "baseline_stats.csv").exists()
        else {}
    )
    jobs = json.loads((out / "jobs.json").read_text()) if (out / "jobs.json").exists() else []
    load = json.loads((out / "load.json").read_text()) if (out / "load.json").exists() else []
    L = []
    L.append(f"# Load test {meta['started']} ({meta['run_time']}, {meta['users']} users)\n")
    L.append("Command: `" + meta["command"] + "`\n")
    L.append(
        f"Setup: gunicorn {meta['web_workers']} sync workers; Celery workers "
        f"{meta['celery']} (--concurrency 1 each; beat on the first); PostgreSQL as the "
        f"application role; Redis `{meta['redis']}`; DJANGO_ENV=production, DEBUG off; "
        f"{meta['orgs_small']} small organisations, big: {meta['big'] or 'none'}; "
        f"pipelines queued at the start: {meta['pipelines']}.\n"
    )
    if load:
        l1 = [s[1] for s in load]
        L.append(
            f"Load average (1 min) during the run: min {min(l1):.2f}, mean "
            f"{sum(l1) / len(l1):.2f}, max {max(l1):.2f} on {os.cpu_count()} CPUs "
            f"(`uptime` before: {meta['uptime_before']}; after: {meta.get('uptime_after', '')}).\n"
        )
    if meta.get("cpu_seconds"):
        cpu = meta["cpu_seconds"]
        web = cpu.get("gunicorn", 0)
        workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
        L.append(
            f"CPU used during the {meta['cpu_wall_seconds']:.0f} s of load: gunicorn {web:.0f} s "
            f"({web / meta['cpu_wall_seconds']:.2f} cores), Celery workers {workers:.0f} s "
            f"({workers / meta['cpu_wall_seconds']:.2f} cores): "
            + ", ".join(f"{k} {v:.0f} s" for k, v in sorted(cpu.items()))
            + "; the rest of the machine's 2 cores went to PostgreSQL, Redis, Locust and other work.\n"
        )
        if groups.get("all", {}).get("requests"):
            per = web / groups["all"]["requests"] * 1000
            L.append(
                f"Web CPU per request (all kinds): {per:.0f} ms — about {1000 / per:.0f} requests/s "
                "per core of gunicorn alone, before the database.\n"
            )
    if meta.get("unapplied_migrations"):
        L.append(
            f"Migrations not applied during the run: {', '.join(meta['unapplied_migrations'])}.\n"
        )
    L.append("\n## By group (every request of the group; exact percentiles)\n")
    L.append(
        "| group | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | target | "
        "baseline p50 / p95 ms | p95 ÷ baseline p95 |"
    )
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    targets = {
        "page": "p95 < 300 ms",
        "page big": "p95 < 300 ms",
        "page small": "p95 < 300 ms",
        "api": "p95 < 150 ms",
        "all": "zero errors",
    }
    for key, title in [*GROUPS, ("all", "**all requests**")]:
        g = groups.get(key)
        if not g:
            continue
        b = base.get(key) or {}
        ratio = f"{g['p95'] / b['p95']:.1f}×" if b.get("p95") else "–"
        L.append(
            f"| {title} | {g['requests']:,} | {_f(g['rps'], 1)} | {_f(g['p50'])} | {_f(g['p95'])} | "
            f"{_f(g['p99'])} | {_f(g['max'])} | {g['failures']} | {targets.get(key, '')} | "
            f"{_f(b.get('p50'))} / {_f(b.get('p95'))} | {ratio} |"
        )
    L.append(
        "\nBaseline: the same requests just before (after a 20 s warm-up), two owners (one on the "
        "big organisation), one reader and one bulk writer, "
        f"no job queued by the test ({meta.get('baseline_time', '–')}).\n"
    )
    L.append("\n## By request (Locust's CSV), slowest p95 first\n")
    L.append(
        "| type | name | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | baseline p50 ms |"
    )
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    body = [r for r in rows if r["Name"] != "Aggregated"]
    body.sort(key=lambda r: (r["Type"] == "JOB", -float(r["95%"] or 0)))
    for r in body:
        L.append(
            f"| {r['Type']} | {r['Name']} | {int(r['Request Count']):,} | {_f(r['Requests/s'], 2)} | "
            f"{_f(r['50%'])} | {_f(r['95%'])} | {_f(r['99%'])} | {_f(r['Max Response Time'])} | "
            f"{r['Failure Count']} | {_f((brows.get(r['Name']) or {}).get('50%'))} |"
        )
    L.append(
        "\n(`JOB` rows are jobs followed by the importer and the campaign sender: seconds × 1000.)\n"
    )
    fails = out / "locust_failures.csv"
    if fails.exists():
        frows = list(csv.DictReader(open(fails)))
        if frows:
            L.append("\n## Errors\n")
            L.append("| method | name | occurrences | error |")
            L.append("| --- | --- | ---: | --- |")
            for r in frows:
                L.append(
                    f"| {r['Method']} | {r['Name']} | {r['Occurrences']} | {r['Error'][:200]} |"
                )
    if jobs:
        L.append("\n## Jobs created during the run\n")
        L.append(
            "| kind | orgs | jobs | statuses | wait p50 / max s | run p50 / max s | run total s |"
        )
        L.append("| --- | --- | ---: | --- | ---: | ---: | ---: |")
        for j in jobs:
            st = ", ".join(f"{k} {v}" for k, v in sorted(j["statuses"].items()))
            L.append(
                f"| {j['kind']} | {j['org']} ({j['organisations']}) | {j['jobs']} | {st} | "
                f"{_f(j['wait_p50_s'], 1)} / {_f(j['wait_max_s'], 1)} | {_f(j['run_p50_s'], 1)} / "
                f"{_f(j['run_max_s'], 1)} | {_f(j['run_total_s'], 0)} |"
            )
    text = "\n".join(L) + "\n"
    (out / "report.md").write_text(text)
    return text


# --- main ---------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=40)
    p.add_argument("--spawn-rate", type=float, default=4)
    p.add_argument("--run-time", default="5m")
    p.add_argument("--small-orgs", type=int, default=50)
    p.add_argument("--big-name", default="Bench 1M")
    p.add_argument(
        "--big-share", type=float, default=0.3, help="share of owners browsing the big org"
    )
    p.add_argument("--mix", default="owner=10,reader=6,bulk=3", help="user class weights")
    p.add_argument("--baseline-time", default="1m", help="0: no baseline run before the jobs")
    p.add_argument("--port", type=int, default=8108)
    p.add_argument("--web-workers", type=int, default=4)
    p.add_argument("--interactive-workers", type=int, default=1)
    p.add_argument("--mixed-workers", type=int, default=1)
    p.add_argument("--heavy-workers", type=int, default=1)
    p.add_argument(
        "--small-pipelines", type=int, default=50, help="small orgs whose pipeline is queued"
    )
    p.add_argument(
        "--big-pipelines", type=int, default=1, help="0: leave the big org's pipeline out"
    )
    p.add_argument("--pipeline-steps", help="steps of the queued pipelines (default: all)")
    p.add_argument("--no-pipelines", action="store_true")
    p.add_argument("--no-beat", action="store_true")
    p.add_argument("--redis-db", type=int, help="use this Redis database instead of REDIS_URL's")
    p.add_argument("--out", help="results folder (default var/loadtest/run-<time>)")
    p.add_argument("--migrate", action="store_true", help="apply migrations first (owner role)")
    p.add_argument("--skip-prepare", action="store_true", help="reuse the fixtures file as it is")
    a = p.parse_args()
    for var in ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL"):
        if not os.environ.get(var):
            sys.exit(
                f"{var} must be set (PostgreSQL as the application role, its owner, and Redis)"
            )
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("the load test runs on PostgreSQL: DATABASE_URL=postgres://segmenta_app:…")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = ROOT / "var" / "loadtest"
    out = Path(a.out) if a.out else base / f"run-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    fixtures = base / "fixtures.json"
    redis = _redis_db(os.environ["REDIS_URL"], a.redis_db)
    env = {
        **os.environ,
        "REDIS_URL": redis,
        "DJANGO_ENV": "production",
        "SECRET_KEY": "loadtest-" + "x" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SITE_URL": f"http://127.0.0.1:{a.port}",
        "SECURE_SSL_REDIRECT": "False",
        "EMAIL_URL": "memorymail://",
        "SEGMENTA_VAR_DIR": str(base / "var"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DEBUG", None)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    meta = {
        "started": stamp,
        "run_time": a.run_time,
        "users": a.users,
        "command": " ".join(["python", "bench/loadtest/run.py", *sys.argv[1:]]),
        "baseline_time": a.baseline_time,
        "web_workers": a.web_workers,
        "redis": redis.rsplit("@", 1)[-1],
        "orgs_small": a.small_orgs,
        "uptime_before": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    since = None
    # what cancel-jobs may touch: the small organisations' jobs, the big one's it queued
    scope = ["--fixtures", str(fixtures), "--pipelines", str(out / "pipelines.json")]
    sampler = LoadSampler()
    try:
        if a.migrate:
            log("migrating (as the owner role)")
            subprocess.run(
                [PY, "manage.py", "migrate", "--noinput"],
                cwd=ROOT,
                env={**env, "SEGMENTA_DB_ROLE": "owner"},
                check=True,
                timeout=3600,
            )
        plan = subprocess.run(
            [PY, "manage.py", "showmigrations", "--plan"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        pending = [
            ln.split("]", 1)[1].strip() for ln in plan.stdout.splitlines() if ln.startswith("[ ]")
        ]
        meta["unapplied_migrations"] = pending
        if pending:
            log(
                f"WARNING: {len(pending)} migrations not applied (--migrate applies them): {pending}"
            )
        if not (a.skip_prepare and fixtures.exists()):
            log("preparing data (made once; later runs reuse it)")
            run_step(
                [
                    PY,
                    str(HERE / "prepare.py"),
                    "prepare",
                    "--out",
                    str(fixtures),
                    "--small-orgs",
                    str(a.small_orgs),
                    "--big-name",
                    a.big_name,
                ],
                env,
            )
        fx = json.loads(fixtures.read_text())
        big = [o for o in fx["orgs"] if o["big"]]
        meta["big"] = f"{big[0]['name']} ({big[0]['slug']})" if big else ""
        meta["orgs_small"] = sum(1 for o in fx["orgs"] if not o["big"])
        qi, qh = fx["queues"]["interactive"] or "celery", fx["queues"]["heavy"] or "celery"
        layout = (
            [("interactive", qi)] * a.interactive_workers
            + [("mixed", f"{qi},{qh}" if qi != qh else qi)] * a.mixed_workers
            + [("heavy", qh)] * a.heavy_workers
        )
        meta["celery"] = ", ".join(f"-Q {q}" for _, q in layout)
        if a.redis_db is not None:  # a database of the load test's own: drop old messages
            queues = ",".join(sorted({q for _, q in layout for q in q.split(",")}))
            subprocess.run(
                [str(BIN / "celery"), "-A", "config", "purge", "-f", "-Q", queues],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=120,
            )
        start(
            "gunicorn",
            [
                str(BIN / "gunicorn"),
                "config.wsgi",
                "-w",
                str(a.web_workers),
                "-b",
                f"127.0.0.1:{a.port}",
                "--timeout",
                "120",
                "--preload",
                "-c",
                str(HERE / "gunicorn.conf.py"),
                "--no-control-socket",
                "--access-logfile",
                "-",
                "--access-logformat",
                '%(t)s %(p)s "%(r)s" %(s)s %(b)s %(M)sms',
            ],
            env,
            out,
        )
        for i, (kind, queues) in enumerate(layout, start=1):
            cmd = [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "--concurrency",
                "1",
                "--loglevel",
                "WARNING",
                "-n",
                f"loadtest-{kind}-{i}@%h",
            ]
            if i == 1 and not a.no_beat:
                cmd += ["--beat", "--schedule", str(base / "var" / "beat-schedule")]
            start(f"worker-{i}-{kind}", cmd, env, out)
        wait_http(f"http://127.0.0.1:{a.port}/healthz")
        since = datetime.now(UTC).isoformat()  # what cancel-jobs may cancel starts here
        lenv = {
            **env,
            "LOADTEST_FIXTURES": str(fixtures),
            "LOADTEST_BIG_SHARE": str(a.big_share),
            "LOADTEST_HOST": f"http://127.0.0.1:{a.port}",
        }
        if a.baseline_time not in ("", "0", "0s"):
            # the same requests, two owners (the big organisation's and a small one's), a
            # reader and a bulk writer, before any job is queued; after a warm-up
            locust("warmup", 4, 4, "20s", BASELINE_MIX, lenv, out)
            locust("baseline", 4, 4, a.baseline_time, BASELINE_MIX, lenv, out)
        jobs_since = datetime.now(UTC).isoformat()
        meta["since"] = jobs_since
        if not a.no_pipelines:
            started = run_step(
                [
                    PY,
                    str(HERE / "prepare.py"),
                    "start-jobs",
                    "--fixtures",
                    str(fixtures),
                    "--small-pipelines",
                    str(a.small_pipelines),
                    "--big-pipelines",
                    str(a.big_pipelines),
                    *(["--steps", a.pipeline_steps] if a.pipeline_steps else []),
                ],
                env,
            )
            (out / "pipelines.json").write_text(started)
            queued = json.loads(started)
            n_big = sum(1 for x in queued if x["big"])
            meta["pipelines"] = (
                f"big {n_big}, small {len(queued) - n_big} "
                f"({a.pipeline_steps or 'every step'} each)"
            )
        else:
            meta["pipelines"] = "none"
        sampler.start()
        cpu0, t0 = cpu_by_group(), time.monotonic()
        locust("locust", a.users, a.spawn_rate, a.run_time, a.mix, lenv, out)
        cpu1, wall = cpu_by_group(), time.monotonic() - t0
        meta["cpu_seconds"] = {
            k: round(cpu1.get(k, 0) - v, 1)
            for k, v in cpu0.items()
            if k not in ("warmup", "baseline", "locust")
        }
        meta["cpu_wall_seconds"] = round(wall, 1)
        sampler.stop()
        meta["uptime_after"] = subprocess.run(
            ["uptime"], capture_output=True, text=True
        ).stdout.strip()
        (out / "load.json").write_text(json.dumps(sampler.samples))
        run_step(
            [
                PY,
                str(HERE / "prepare.py"),
                "report-jobs",
                "--since",
                jobs_since,
                "--out",
                str(out / "jobs.json"),
                "--fixtures",
                str(fixtures),
            ],
            env,
        )
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
    finally:
        sampler.stop()
        try:
            if since:
                try:
                    run_step(
                        [PY, str(HERE / "prepare.py"), "cancel-jobs", "--since", since, *scope],
                        env,
                        timeout=120,
                    )
                except (SystemExit, Exception) as exc:
                    log(f"cancelling jobs failed: {exc}")
        finally:
            stop_all()
        if since:
            try:
                run_step(
                    [
                        PY,
                        str(HERE / "prepare.py"),
                        "cancel-jobs",
                        "--since",
                        since,
                        "--force",
                        *scope,
                    ],
                    env,
                    timeout=120,
                )
            except (SystemExit, Exception) as exc:
                log(f"cancelling jobs failed: {exc}")
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    if (out / "locust_stats.csv").exists():
        text = report(out, meta)
        print(text)
        shutil.copy(out / "report.md", base / "last-report.md")
        log(f"results in {out}")


if __name__ == "__main__":
    main()
