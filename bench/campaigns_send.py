"""Benchmark: render and hand over 100,000 personalised campaign emails, against the
same number of hand-offs of one pre-rendered message measured in the same run.

    .venv/bin/python bench/campaigns_send.py [--messages 100000] [--backend locmem|file] [--json out.json]

Measured (what the send job does per message, without its database writes):
  each of two variants compiled once (MJML layout and CSS inlined once per variant);
  per customer: signed unsubscribe, preferences and open-pixel links, a signed click
  link for each of the body's links, the subject and body rendered with the
  customer's merge fields and three recommended products, the plain-text part, the
  `List-Unsubscribe` headers, an `EmailMultiAlternatives` with the HTML alternative,
  handed to Django's email backend over one connection per batch of 500.
Baseline (1.0x): the same hand-offs of one message rendered before the clock starts.

The in-memory backend keeps every message in `mail.outbox`; it is emptied after each
batch so memory stays flat (the hand-off, including building the MIME message, is
still timed). `--backend file` writes every message to files in a temporary
directory instead. Target: under 2 minutes for 100,000 on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH = 500
SUBJECTS = ("{{ first_name }}, something new for you", "New in {{ favourites }}")
BODIES = (
    "Hi {{ first_name }},\n\nAs one of our {{ segment }} customers you get first look at "
    "the spring range: https://shop.example/spring\n\n{% recommendations 3 %}\n\n"
    "See you soon,\n{{ shop_name }}",
    "Hello {{ first_name }} — we picked these for you.\n\n{% recommendations 3 %}\n\n"
    "More at https://shop.example/new and https://shop.example/sale",
)


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("SEGMENTA_VAR_DIR", tempfile.mkdtemp(prefix="bench-campaigns-"))
    import django

    django.setup()


def _context(i: int) -> dict:
    names = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
    return {
        "first_name": names[i % len(names)],
        "last_name": f"Tester{i}",
        "segment": ("Loyal regulars", "New this year", "Bargain hunters")[i % 3],
        "persona": ("The devoted", "The curious", "The thrifty")[i % 3],
        "favourites": ("Tea", "Ceramics", "Linen")[i % 3],
        "loyalty_tier": None,
        "offer_code": None,
        "shop_name": "Acme Gifts",
        "recommendations": [
            {
                "name": f"Product {(i + k) % 500}",
                "url": f"https://shop.example/p/{(i + k) % 500}",
                "image_url": f"https://shop.example/img/{(i + k) % 500}.jpg",
            }
            for k in range(3)
        ],
    }


def _connection(kind: str, directory: str):
    from django.core.mail import get_connection

    if kind == "file":
        return get_connection(
            "django.core.mail.backends.filebased.EmailBackend", file_path=directory
        )
    return get_connection("django.core.mail.backends.locmem.EmailBackend")


def run(n: int, backend: str) -> dict:
    import secrets

    from django.core import mail

    from campaigns import links
    from campaigns.models import Delivery, TrackedLink
    from campaigns.rendering import compile_message
    from campaigns.sending import email_message, outbox_headers

    directory = tempfile.mkdtemp(prefix="bench-campaigns-mail-")
    sender, reply_to = "Acme Gifts <shop@acme.example>", []
    contexts = [_context(i) for i in range(n)]  # merge fields are read before (not timed)
    deliveries = [
        Delivery(
            pk=i + 1,
            organization_id=1,
            campaign_id=1,
            customer_id=i + 1,
            token=secrets.token_hex(16),
            to_address=f"customer{i}@example.com",
        )  # fmt: skip
        for i in range(n)
    ]
    tracked: dict[str, TrackedLink] = {}

    def tracked_link(url: str) -> TrackedLink:
        if url not in tracked:  # the job stores each URL once per campaign
            tracked[url] = TrackedLink(
                pk=len(tracked) + 1, organization_id=1, campaign_id=1, url=url
            )
        return tracked[url]

    # a running worker has its URL patterns loaded already: load them before the clock
    for purpose in links.PURPOSES:
        links._path_parts(purpose)

    # --- measured: the send job's per-message work ----------------------------------
    mail.outbox = []
    cpu_started = time.process_time()
    started = time.perf_counter()
    compiled = [
        compile_message(channel="email", subject=s, body=b)
        for s, b in zip(SUBJECTS, BODIES, strict=True)
    ]
    compile_seconds = time.perf_counter() - started
    for start in range(0, n, BATCH):
        with _connection(backend, directory) as connection:
            for i in range(start, min(start + BATCH, n)):
                delivery = deliveries[i]
                rendered = compiled[i % 2].render(
                    contexts[i],
                    link=lambda url, d=delivery: links.click_url(d, tracked_link(url)),
                    unsubscribe_url=links.unsubscribe_url(delivery),
                    open_pixel_url=links.open_pixel_url(delivery),
                    preferences_url=links.preferences_url(delivery),
                )
                headers = {**links.list_unsubscribe_headers(delivery), **outbox_headers(delivery)}
                message = email_message(
                    rendered=rendered, to=delivery.to_address, sender=sender,
                    reply_to=reply_to, headers=headers, connection=connection,
                )  # fmt: skip
                connection.send_messages([message])
        mail.outbox = []
    personalised = time.perf_counter() - started
    personalised_cpu = time.process_time() - cpu_started

    # --- baseline: one message rendered beforehand, the same hand-offs --------------
    one = compiled[0].render(contexts[0], unsubscribe_url="u", open_pixel_url="p")
    mail.outbox = []
    started = time.perf_counter()
    cpu_started = time.process_time()
    for start in range(0, n, BATCH):
        with _connection(backend, directory) as connection:
            for i in range(start, min(start + BATCH, n)):
                message = email_message(
                    rendered=one, to=deliveries[i].to_address, sender=sender,
                    reply_to=reply_to, headers={}, connection=connection,
                )  # fmt: skip
                connection.send_messages([message])
        mail.outbox = []
    baseline = time.perf_counter() - started
    baseline_cpu = time.process_time() - cpu_started
    shutil.rmtree(directory, ignore_errors=True)
    sample = compiled[0].render(contexts[0], link=lambda u: u)
    return {
        "messages": n,
        "backend": backend,
        "personalised_seconds": round(personalised, 2),
        "compile_seconds": round(compile_seconds, 3),
        "per_message_ms": round(1000 * personalised / n, 3),
        "baseline_seconds": round(baseline, 2),
        "ratio": round(personalised / baseline, 2) if baseline else None,
        "personalised_cpu_seconds": round(personalised_cpu, 2),
        "baseline_cpu_seconds": round(baseline_cpu, 2),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "target_seconds": 120,
        "html_bytes": len(sample.html),
        "sample_text": sample.text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--backend", choices=("locmem", "file"), default="locmem")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    _setup()
    result = run(args.messages, args.backend)
    print(f"{result['messages']:,} personalised emails to {args.backend}: "
          f"{result['personalised_seconds']} s ({result['per_message_ms']} ms each); "
          f"one pre-rendered message: {result['baseline_seconds']} s; "
          f"ratio {result['ratio']}x; target < 120 s", file=sys.stderr)  # fmt: skip
    out = {k: v for k, v in result.items() if k != "sample_text"}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
