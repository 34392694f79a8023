"""Segments, segment history and personas (issue 4)."""

__all__: list[str] = []
