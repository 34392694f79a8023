"""plotly.js (4.8 MB) reaches browsers compressed, however the site runs: the test
settings, production (WhiteNoise from its file list) and `make run` (runserver with
DEBUG, WhiteNoise looking files up per request); and the charts never offer to
send an owner's customer data to Plotly's cloud."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from django.conf import settings
from django.core.management import get_commands
from django.test import RequestFactory, override_settings
from whitenoise.middleware import WhiteNoiseMiddleware

PLOTLY = "/static/vendor/plotly.min.js"
FULL_SIZE = 4_800_000


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _check_compressed(response) -> None:
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    body = _body(response)
    # well under the 4.8 MB of the uncompressed file, and still the whole of it
    assert len(body) < 2_000_000, len(body)
    assert len(gzip.decompress(body)) > FULL_SIZE
    assert "Accept-Encoding" in response["Vary"]


def test_plotly_is_served_gzip_compressed(client):
    _check_compressed(client.get(PLOTLY, HTTP_ACCEPT_ENCODING="gzip, deflate, br"))
    # a client that cannot decompress still gets the plain file
    plain = client.get(PLOTLY)
    assert plain.status_code == 200 and "Content-Encoding" not in plain
    assert len(_body(plain)) > FULL_SIZE


@override_settings(DEBUG=True)
def test_plotly_is_compressed_in_development_too():
    """`make run` serves with DEBUG: WhiteNoise finds files per request, and
    runserver must leave static files to it (its own handler never compresses)."""
    middleware = WhiteNoiseMiddleware(get_response=lambda request: None)
    assert middleware.autorefresh
    request = RequestFactory().get(PLOTLY, HTTP_ACCEPT_ENCODING="gzip")
    _check_compressed(middleware(request))
    assert get_commands()["runserver"] == "whitenoise.runserver_nostatic"


def test_charts_offer_no_cloud_buttons_and_no_toolbar():
    source = (Path(settings.BASE_DIR) / "static/js/charts.js").read_text()
    calls = re.findall(r"Plotly\.newPlot\(", source)
    assert calls, "charts.js draws no chart?"
    # every chart is drawn through the one helper that carries the shared config
    assert len(calls) == 1, "draw every chart through draw(), which carries CONFIG"
    config = re.search(r"var CONFIG = \{(.*?)\};", source, re.S).group(1)
    assert re.search(r"displayModeBar:\s*false", config)
    assert re.search(r"displaylogo:\s*false", config)
    assert re.search(r"showSendToCloud:\s*false", config)
    assert re.search(r"showEditInChartStudio:\s*false", config)
    assert "sendDataToCloud" in config  # removed from the bar, should it ever show
