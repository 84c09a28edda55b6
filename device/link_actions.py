"""The link actions (``link``, ``unlink``, ``link_answer``) of the dispatcher."""

from __future__ import annotations

from typing import Any, Protocol

from drivers.common.actions import ActionError


class LinkControl(Protocol):
    """The box's links as the actions use them (:class:`device.links.LinkControl`)."""

    def links(self) -> list[dict[str, Any]]: ...

    async def link(self, name: str, server: str, room: int | str, secret: str | None,
                   direction: Any) -> dict[str, Any]: ...

    async def unlink(self, name: str) -> None: ...

    async def answer(self, request_id: str, accept: bool, reason: str) -> None: ...

    async def close(self) -> None: ...


class LinkActions:
    """Mixed into :class:`device.actions.Dispatcher`; ``links`` is set while the ``links``
    subsystem runs."""

    links: LinkControl | None = None

    async def close_links(self) -> None:
        if self.links is not None:
            await self.links.close()

    def _links(self) -> LinkControl:
        if self.links is None:
            raise ActionError("UNAVAILABLE", "links are not running")
        return self.links

    async def _do_link(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._links().link(args["name"], args["server"], args["room"],
                                         args.get("secret"), args.get("direction", "both"))

    async def _do_unlink(self, args: dict[str, Any]) -> dict[str, Any]:
        await self._links().unlink(args["name"])
        return {"name": args["name"], "state": "stopped"}

    async def _do_link_answer(self, args: dict[str, Any]) -> dict[str, Any]:
        accept = args["answer"] == "accept"
        await self._links().answer(args["id"], accept, args.get("reason", ""))
        return {"id": args["id"], "accepted": accept}
