"""Stores API (CONTRACT.md): built by the stores helper."""

urlpatterns: list = []
