"""Errors raised by infinitic-streams. Every error names what went wrong and what to do."""

from __future__ import annotations


class InfiniticError(Exception):
    """Base class of every error this package raises on purpose."""


class SerializationError(InfiniticError):
    """A user value cannot be encoded or decoded as a payload.

    `path` locates the offending value inside the encoded structure, for example
    `args[1].items[3]`; `type_name` names its Python type (or the expected type when decoding).
    """

    def __init__(self, path: str, type_name: str, reason: str) -> None:
        self.path = path
        self.type_name = type_name
        self.reason = reason
        super().__init__(f"{path}: {reason} (type {type_name})")
