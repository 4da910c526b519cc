"""Routes without parameters found by a dict lookup instead of Starlette's scan.

Starlette's router tries each route in turn — a regex match and a new dict per route — until one
matches; the hot routes come first, but every route after them pays for those before it. A route
whose path has no parameters is found here by ``(path, method)`` first, with exactly the route
Starlette would pick: only where no earlier route could also match that path and method. Anything
else (parameters, a 405, a path no route serves) goes on to Starlette's scan.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send


def static_table(routes: Sequence[BaseRoute]) -> dict[tuple[str, str], Route]:
    table: dict[tuple[str, str], Route] = {}
    for i, route in enumerate(routes):
        if not isinstance(route, Route):
            break  # a Mount (or the like) may match anything: nothing after it is indexed
        if route.param_convertors or route.methods is None:
            continue
        for method in route.methods:
            key = (route.path, method)
            if key not in table and not any(_full_match(r, route.path, method) for r in routes[:i]):
                table[key] = route
    return table


def _full_match(route: BaseRoute, path: str, method: str) -> bool:
    assert isinstance(route, Route)  # static_table stops at the first that is not
    return route.path_regex.match(path) is not None and (route.methods is None or method in route.methods)


class StaticRoutes:
    """The router's entry point (``Router.middleware_stack``): the table first, then the scan."""

    def __init__(self, router: Router) -> None:
        self._router = router
        self._scan = router.app
        self._table = static_table(router.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self._table.get((scope["path"], scope["method"]))
            if route is not None:
                # What Router.app and Route.matches would have put in the scope.
                scope.setdefault("router", self._router)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = dict(scope.get("path_params", {}))
                await route.handle(scope, receive, send)
                return
        await self._scan(scope, receive, send)
