"""One route of the page's API and what the OpenAPI document says about it."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp.typedefs import Handler

from services.web.schema import Schema


@dataclass(frozen=True, eq=False)  # hashed by identity: the OpenAPI document is cached
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: Schema | None = None
    response: Schema | None = None
    media: str = "application/json"
    errors: tuple[int, ...] = (401,)
    public: bool = False
    path_params: dict[str, Schema] = field(default_factory=dict)
    query: dict[str, Schema] = field(default_factory=dict)
    description: str = ""
