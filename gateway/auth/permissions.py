"""Who may call which route, declared once, where the route is registered.

Every feature module registers its routes with ``add_route(app, method, path, handler, access)`` (and static
directories with ``add_static``), so a route cannot exist without its requirement. The application keeps the
declarations in one table (``ACCESS``); ``gateway.auth.middleware.authenticate`` enforces it before any handler
runs, ``gateway.openapi`` publishes it on every operation (``x-scopes``, and ``security: []`` for public ones),
and ``gateway.permissions_doc`` writes the table of docs/security.md from it. ``check_complete`` refuses to build
an application with a route the table does not cover.

An ``Access`` names the scopes a caller needs, all of them; a role has a scope when ``ROLE_SCOPES`` grants it,
and an API key narrowed with scopes must name it as well. ``also`` states, in words, a rule the handler applies
to the resource itself on top (who created it, a query parameter that needs another scope).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.auth.principal import ROLE_SCOPES, ROLES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# the scope only the platform administrator holds (its role grants every scope)
PLATFORM = "*"


@dataclass(frozen=True)
class Access:
    scopes: tuple[str, ...] = ()
    public: bool = False
    also: str = ""

    def roles(self) -> tuple[str, ...]:
        """The roles that hold every scope this access needs (all of them for a public or signed-in route)."""
        return tuple(role for role in ROLES
                     if all(PLATFORM in ROLE_SCOPES[role] or scope in ROLE_SCOPES[role] for scope in self.scopes))


PUBLIC = Access(public=True)
SIGNED_IN = Access()


def needs(*scopes: str, also: str = "") -> Access:
    known = set().union(*ROLE_SCOPES.values())
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; the roles grant {sorted(known)}")
    return Access(scopes=tuple(scopes), also=also)


ACCESS = web.AppKey("access", dict)  # (METHOD, canonical path) -> Access


def table(app: web.Application) -> dict[tuple[str, str], Access]:
    if ACCESS not in app:
        app[ACCESS] = {}
    routes: dict[tuple[str, str], Access] = app[ACCESS]
    return routes


def add_route(app: web.Application, method: str, path: str, handler: Handler, access: Access) -> None:
    """Register a route and what a caller needs to call it (GET routes answer HEAD too)."""
    entries = table(app)
    if (method, path) in entries:
        raise ValueError(f"{method} {path} is registered twice")
    entries[(method, path)] = access
    if method == "GET":
        app.router.add_get(path, handler)
    else:
        app.router.add_route(method, path, handler)


def add_static(app: web.Application, prefix: str, directory: Path, *, follow_symlinks: bool = False) -> None:
    """Files under ``prefix``, public (the web app's and the API browser's assets); declared even while the
    directory does not exist yet (a web app not built), so that the declarations do not depend on a build."""
    table(app)[("GET", prefix)] = PUBLIC
    if directory.is_dir():
        app.router.add_static(prefix, directory, follow_symlinks=follow_symlinks)


def access_for(request: web.Request) -> Access | None:
    """What the matched route needs; None when no route matched (the router answers 404 or 405)."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return table(request.app).get((method, resource.canonical))


def check_complete(app: web.Application) -> None:
    """Every route of the application has its declared access (CORS preflights excepted)."""
    entries = table(app)
    missing = sorted({(route.method, route.resource.canonical) for route in app.router.routes()
                      if route.resource is not None and route.method not in ("HEAD", "OPTIONS", "*")
                      and (route.method, route.resource.canonical) not in entries})
    if missing:
        raise RuntimeError(f"routes without a declared access: {missing}")
