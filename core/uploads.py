"""Uploads larger than the limit are refused before they are stored.

Two guards, both on every multipart request (the only uploads are import files):
the declared `Content-Length` is checked before anything reads the body (413
with the API's error shape, or a page on the site), and an upload handler
counts each file's bytes as they stream in and stops past the limit, for bodies
whose length was not declared or that hold more than one file. Without them
Django stores the whole body (in a temporary file) before any view can refuse it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import JsonResponse
from django.shortcuts import render

from .formats import size_text
from .web import checked_next

# Room for the form's other fields (kind, a mapping of up to hundreds of columns,
# options) and the multipart boundaries around the file.
FORM_MARGIN = 256 * 1024


def too_large_message(limit: int | None = None) -> str:
    limit = settings.UPLOAD_MAX_BYTES if limit is None else limit
    return (
        f"The file is larger than the limit of {size_text(limit)}. "
        "Compress it as .csv.gz or split it."
    )


class UploadLimitHandler(FileUploadHandler):
    """Stops reading an uploaded file once it passes the limit. The view sees
    `request.upload_refused` (the message) and answers 413."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            self.request.upload_refused = too_large_message(self.limit)
            # connection_reset: do not read (and discard) the rest of the body either.
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers store the file


def upload_refused(request) -> str | None:
    """The reason an upload of this request was stopped, if it was."""
    return getattr(request, "upload_refused", None)


def too_large_response(request, message: str):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": "too_large", "message": message, "fields": {"file": "Too large."}}},
            status=413,
        )
    return render(
        request,
        "error.html",
        {
            "status": 413,
            "title": "The file is too large",
            "text": message,
            # A path such as //evil.example/ would be a link off the site.
            "back_url": checked_next(request, request.path, default="/"),
            "back_label": "Back to the upload",
        },
        status=413,
    )


class UploadLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("POST", "PUT", "PATCH") and request.content_type == (
            "multipart/form-data"
        ):
            limit = settings.UPLOAD_MAX_BYTES
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit + FORM_MARGIN:
                return too_large_response(request, too_large_message(limit))
            request.upload_handlers.insert(0, UploadLimitHandler(request, limit))
        return self.get_response(request)
