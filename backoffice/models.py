"""The back office keeps no tables of its own. This module exists so that Django
sends `post_migrate` for the app, which keeps the staff groups up to date
(backoffice/groups.py)."""
