"""The customer page's loyalty card (skeleton)."""


def customer_panel(*, request, customer):
    return None
