"""Authorization from one table: every route declares what it needs where it is registered; the application
refuses a route without a declaration; docs/security.md's table is written from the declarations and this test
fails when it was not rewritten. (tests/integration/test_access.py checks that the gateway enforces exactly what
/openapi.json publishes, for every operation, role and scope.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from foundation.settings import Settings
from gateway import permissions_doc
from gateway.app import create_app
from gateway.auth.permissions import ACCESS, PUBLIC, Access, add_route, check_complete, needs
from gateway.openapi import DOCUMENT

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> web.Application:
    return create_app(Settings(home=tmp_path_factory.mktemp("home")))


def test_docs_security_md_shows_the_declared_access() -> None:
    assert permissions_doc.main(["--check", str(DOCS)]) == 0, (
        "docs/security.md differs from the routes' declared access: run python -m gateway.permissions_doc "
        "docs/security.md")


def test_every_route_declares_its_access_and_the_document_publishes_it(app: web.Application) -> None:
    table: dict[tuple[str, str], Access] = app[ACCESS]
    public = {path for (method, path), access in table.items() if access.public}
    assert public == {"/", "/health", "/health/detailed", "/ready", "/metrics", "/openapi.json", "/docs",
                      "/docs/static", "/static/app", "/v1/auth/token", "/v1/auth/refresh"}
    for path, item in app[DOCUMENT]["paths"].items():
        for method, op in item.items():
            access = table[(method.upper(), path)]
            if access.public:
                assert op["security"] == [], (method, path)
            else:
                assert op["x-scopes"] == list(access.scopes) and op["x-roles"] == list(access.roles())


def test_replays_need_the_replay_scope_as_documented(app: web.Application) -> None:
    access = app[ACCESS][("POST", "/v1/replays")]
    assert access.scopes == ("replay",) and access.roles() == ("admin", "org_admin")
    assert app[ACCESS][("POST", "/v1/organizations")].roles() == ("admin",)


def test_a_route_without_a_declaration_is_refused(tmp_path: Path) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    add_route(app, "GET", "/declared", handler, PUBLIC)
    check_complete(app)
    app.router.add_get("/undeclared", handler)
    with pytest.raises(RuntimeError, match="/undeclared"):
        check_complete(app)
    with pytest.raises(ValueError, match="registered twice"):
        add_route(app, "GET", "/declared", handler, PUBLIC)


def test_only_scopes_a_role_grants_can_be_needed() -> None:
    assert needs("jobs:read", "speakers:write").scopes == ("jobs:read", "speakers:write")
    with pytest.raises(ValueError, match="unknown scopes"):
        needs("jobs:reed")
