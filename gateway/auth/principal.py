"""The caller of a request and what its role lets it do."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("admin", "org_admin", "user", "api_client")

# What each role may do. API keys may narrow this further with their own scopes.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "org_admin": frozenset({"jobs:read", "jobs:write", "jobs:delete", "speakers:read", "speakers:write", "live",
                            "keys:manage", "users:manage", "org:manage", "audit:read", "pii:read", "usage:read",
                            "webhooks:manage", "replay", "analytics:read", "analytics:manage"}),
    "user": frozenset({"jobs:read", "jobs:write", "speakers:read", "speakers:write", "live", "usage:read",
                       "analytics:read"}),
    "api_client": frozenset({"jobs:read", "jobs:write", "speakers:read", "live", "analytics:read"}),
}


@dataclass(frozen=True)
class Principal:
    org_id: str
    role: str
    user_id: str | None = None
    key_id: str | None = None
    key_scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"user:{self.user_id}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can(self, scope: str) -> bool:
        allowed = ROLE_SCOPES.get(self.role, frozenset())
        if "*" not in allowed and scope not in allowed:
            return False
        return not self.key_scopes or scope in self.key_scopes or "*" in self.key_scopes

    def sees(self, org_id: str | None) -> bool:
        """Organisations are isolated: only a platform admin crosses them."""
        return self.is_admin or org_id == self.org_id
