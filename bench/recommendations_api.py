"""Benchmark: latency of `GET /api/v1/customers/{id}/recommendations/` against
`GET /api/v1/customers/{id}/` (the baseline), measured in the same run.

    .venv/bin/python bench/recommendations_api.py [--customers 20000] [--products 2000] [--lines 200000] [--requests 500]

1. Generates a shop (the themed shoppers of ``bench/recommendations_train.py``),
   loads it into a fresh SQLite database (the embedded default, a temporary
   directory) and runs the recommendations step, so the organisation has a live
   run (10 products for every customer). Not timed.
2. Through Django's test client with a read API key (authentication, tenant
   scoping, throttling with the default database cache, the JSON renderer — the
   whole request inside Django; no network or WSGI server): 20 warm-up requests,
   then `--requests` of each endpoint over random customers of the organisation,
   the two interleaved so both see the same load.

Prints p50, p95, p99 and mean in milliseconds and each endpoint's ratio to the
baseline. Target: p95 of the recommendations under 50 ms. Timed assertions do
not belong in tests; this is the place for them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _setup(var_dir: str) -> None:
    os.environ["SEGMENTA_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)  # always the embedded SQLite default
    os.environ.pop("REDIS_URL", None)
    # the rate limit is not what is measured (the throttle's cache write still is)
    os.environ["API_THROTTLE_KEY"] = "1000000/min"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import logging

    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    for name in ("segmenta.jobs", "segmenta.recommendations", "django.request"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _summary(samples: list[float]) -> dict:
    import numpy as np

    ms = np.array(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "mean_ms": round(float(ms.mean()), 2),
        "requests": int(ms.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="bench-recommendations-api-")
    _setup(tmp.name)

    import numpy as np
    from recommendations_train import AS_OF, generate
    from rest_framework.test import APIClient

    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from accounts.tests.factories import make_api_key
    from customers.models import Customer
    from predictions.tests.factories import write_world
    from recommendations.services import recommendations_run

    org = Organization.objects.create(name="Bench shop", slug="bench")
    print(f"Generating and loading {args.customers:,} customers …", file=sys.stderr)
    write_world(
        org, generate(n_customers=args.customers, n_products=args.products, n_lines=args.lines)
    )
    with tenant_context(org):
        t = time.perf_counter()
        run = recommendations_run(organization=org, as_of=AS_OF)
        print(f"  recommendations step: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        ids = list(Customer.objects.values_list("pk", flat=True))
    _, raw = make_api_key(org, "read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")

    rng = np.random.default_rng(0)
    paths = {
        "customer (baseline)": "/api/v1/customers/{}/",
        "recommendations": "/api/v1/customers/{}/recommendations/",
    }
    for cid in rng.choice(ids, 20):
        for path in paths.values():
            assert client.get(path.format(cid)).status_code == 200
    samples: dict[str, list[float]] = {name: [] for name in paths}
    sizes = []
    for cid in rng.choice(ids, args.requests):
        for name, path in paths.items():
            t = time.perf_counter()
            response = client.get(path.format(cid))
            samples[name].append(time.perf_counter() - t)
            assert response.status_code == 200, response.content[:200]
            if name == "recommendations":
                sizes.append(len(response.json()["results"]))

    figures = {name: _summary(s) for name, s in samples.items()}
    base = figures["customer (baseline)"]
    print(
        f"\n{args.customers:,} customers, {args.products:,} products; live run served "
        f"{run.served}; {args.requests} requests each over random customers "
        f"(mean {np.mean(sizes):.1f} products an answer)\n"
    )
    print(
        f"{'endpoint':24} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'p95 × base':>11}"
    )
    for name, f in figures.items():
        print(
            f"{name:24} {f['p50_ms']:8.2f} {f['p95_ms']:8.2f} {f['p99_ms']:8.2f} "
            f"{f['mean_ms']:8.2f} {f['p95_ms'] / base['p95_ms']:10.2f}×"
        )
    target = figures["recommendations"]["p95_ms"] < 50
    print(f"\nrecommendations p95 under 50 ms: {'yes' if target else 'NO'}")
    out = {"customers": args.customers, "products": args.products, "served": run.served,
           "endpoints": figures, "p95_under_50_ms": target}  # fmt: skip
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    tmp.cleanup()


if __name__ == "__main__":
    main()
