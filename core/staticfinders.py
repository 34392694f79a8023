"""Serve front-end assets straight out of installed Python packages.

Nothing third-party is copied into the repository: plotly.js comes from the
`plotly` wheel (htmx from django-htmx and Swagger UI from the sidecar are found
by the app-directories finder).

plotly.min.js is 4.8 MB. WhiteNoise sends a file compressed only when a `.gz`
(or `.br`) copy lies next to it, and it looks files up through the finders in
every mode the site runs in (tests, `make run` with DEBUG, production), so the
finder hands out a copy in the var directory with its gzip file beside it,
made once per package version.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

# URL path under STATIC_URL → (package, file inside the package)
PACKAGE_ASSETS = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def _source(package: str, inner: str) -> Path:
    return Path(str(files(package).joinpath(inner)))


def _write_atomically(target: Path, write) -> None:
    # Several processes (site, worker, test runs) may make the copy at once:
    # each writes its own temporary file and renames it into place.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _path(package: str, inner: str) -> Path:
    """The asset with a `.gz` copy beside it (the package's own file if the var
    directory cannot be written)."""
    source = _source(package, inner)
    if not source.exists():
        return source
    try:
        pkg_version = version(package)
    except PackageNotFoundError:
        pkg_version = "unknown"
    target = Path(settings.VAR_DIR) / "assets" / f"{package}-{pkg_version}" / source.name
    gz = target.with_name(target.name + ".gz")
    if target.exists() and gz.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as src:
            _write_atomically(gz, lambda out: out.write(gzip.compress(src.read(), 9, mtime=0)))
        with source.open("rb") as src:
            _write_atomically(target, lambda out: shutil.copyfileobj(src, out))
    except OSError:
        return source
    return target


class PackageAssetFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path, find_all=False, **kwargs):
        spec = PACKAGE_ASSETS.get(path)
        if not spec:
            return [] if find_all else None
        found = _path(*spec)
        if not found.exists():
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        for url_path, spec in PACKAGE_ASSETS.items():
            found = _path(*spec)
            if found.exists():
                storage = FileSystemStorage(location=str(found.parent))
                storage.prefix = str(Path(url_path).parent)
                yield found.name, storage
                # Listed too: WhiteNoise's file list (production, tests) only
                # knows of a compressed copy it was shown; collectstatic copies it.
                if found.with_name(found.name + ".gz").exists():
                    yield found.name + ".gz", storage
