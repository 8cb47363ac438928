"""Compatibility shims for third-party packages, applied at run time (installed files stay untouched)."""
