"""Ops: one file per operation, each a pure ``*_forward`` / ``*_backward`` pair plus a thin module."""
