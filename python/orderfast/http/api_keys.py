"""Admin endpoints for API keys."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderfast.http.problems import Problem, not_found
from orderfast.http.request import BodyLimits, principal, read_json_document
from orderfast.services.api_keys import ApiKeyService, key_document
from orderfast.services.errors import InvalidInputError

JSON = "application/json"


class ApiKeyEndpoints:
    def __init__(self, keys: ApiKeyService, limits: BodyLimits) -> None:
        self._keys = keys
        self._limits = limits

    def routes(self) -> list[Route]:
        return [
            Route("/v1/api-keys", self.create, methods=["POST"]),
            Route("/v1/api-keys", self.list, methods=["GET"]),
            Route("/v1/api-keys/{prefix}", self.revoke, methods=["DELETE"]),
        ]

    @staticmethod
    def _admin(request: Request) -> None:
        if not principal(request).is_admin:
            raise Problem(403, "forbidden", "Forbidden", "only admins manage API keys")

    async def create(self, request: Request) -> Response:
        self._admin(request)
        doc = await read_json_document(request, self._limits)
        if not isinstance(doc, dict) or set(doc) - {"name", "roles"}:
            raise InvalidInputError([("", "type", 'the body is {"name": "…", "roles": ["service"]}')])
        name, roles = doc.get("name"), doc.get("roles")
        if not isinstance(name, str) or not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidInputError([("", "type", "name is a string and roles a list of strings")])
        key, record = await self._keys.create(name, roles)
        body = {"key": key, **key_document(record)}  # the only time the key is shown
        return Response(orjson.dumps(body), status_code=201, media_type=JSON)

    async def list(self, request: Request) -> Response:
        self._admin(request)
        return Response(orjson.dumps({"items": [key_document(k) for k in await self._keys.list()]}), media_type=JSON)

    async def revoke(self, request: Request) -> Response:
        self._admin(request)
        if not await self._keys.revoke(request.path_params["prefix"]):
            raise not_found("API key")
        return Response(status_code=204)
