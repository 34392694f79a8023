"""One error type for business failures, shown to people as its message."""


class ApplicationError(Exception):
    def __init__(
        self, message: str, extra: dict | None = None, *, code: str = "invalid", status: int = 400
    ):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.code = code
        self.status = status


class NotFound(ApplicationError):
    def __init__(self, message: str = "Not found.", extra: dict | None = None):
        super().__init__(message, extra, code="not_found", status=404)


class PermissionDenied(ApplicationError):
    def __init__(
        self, message: str = "You do not have permission to do that.", extra: dict | None = None
    ):
        super().__init__(message, extra, code="permission_denied", status=403)
