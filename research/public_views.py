"""Survey pages reached without an account (helper H3 writes them)."""
