"""Writing the audit log from a request: who (the principal, or anonymous), what, to which resource, from
where."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth.principal import Principal
from gateway.refs import AUDIT


async def audit(request: web.Request, principal: Principal | None, action: str, resource: str | None = None,
                details: dict[str, Any] | None = None, org_id: str | None = None) -> None:
    """One entry, in ``org_id`` or else the caller's organization."""
    await request.app[AUDIT].record(principal.actor if principal else "anonymous", action, resource, details,
                                    org_id=org_id or (principal.org_id if principal else None), ip=request.remote)
