"""`Channel`: signals sent to a running workflow. Declared now so that workflow classes can name
their channels; sending and receiving come with the signals issue."""

from __future__ import annotations

from typing import Any

from infinitic_streams.errors import InfiniticError


class Channel:
    """A class attribute of a workflow that receives signals (`stub.approvals.send(v)`)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def receive(self, limit: int | None = None, where: Any = None) -> Any:
        raise InfiniticError(
            f"channel {getattr(self, 'name', '?')}: signals are not available in this version "
            "of infinitic-streams yet"
        )
