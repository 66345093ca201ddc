"""Exceptions with messages meant for people: one line saying what went wrong and what to do."""

from __future__ import annotations


class QkgraphError(Exception):
    """Base class for errors this package raises on purpose."""


class ModelNotFoundError(QkgraphError):
    """A model name or path that cannot be resolved to weights on this machine."""


class UnsupportedArchitectureError(QkgraphError):
    """A model whose attention layout has no adapter."""


class ModelTooLargeError(QkgraphError):
    """A model config whose weights would not fit in this machine's memory."""


class Neo4jConnectionError(QkgraphError):
    """Neo4j unreachable, wrong credentials, or an unknown database."""


class DocumentError(QkgraphError):
    """A document that cannot be read (bad encoding, binary content, malformed line)."""


class StoreIntegrityError(QkgraphError):
    """A batched write of the store wrote another number of rows than it was sent (rolled back)."""
