"""Serve front-end assets straight out of installed Python packages.

Nothing third-party is copied into the repository: plotly.js comes from the
`plotly` wheel (htmx from django-htmx and Swagger UI from the sidecar are found
by the app-directories finder).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

# URL path under STATIC_URL → (package, file inside the package)
PACKAGE_ASSETS = {
    "vendor/plotly.min.js": ("plotly", "package_data/plotly.min.js"),
}


def _path(package: str, inner: str) -> Path:
    return Path(str(files(package).joinpath(inner)))


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
