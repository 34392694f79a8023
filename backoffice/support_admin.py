"""Back office side of support access: asking for a grant, emergency grants, and
the gate on customer records, orders and feedback (accounts/support.py)."""
