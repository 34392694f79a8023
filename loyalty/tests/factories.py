"""One of each tenant object of the app, for the isolation sweep (skeleton)."""


def build_world(organization) -> dict:
    return {}
