"""The table of docs/security.md that says who may call each route, written from the routes' declared access
(``gateway.auth.permissions``), never by hand:

    python -m gateway.permissions_doc docs/security.md          # rewrite the table in place
    python -m gateway.permissions_doc --check docs/security.md  # exit 1 when it differs (tests/unit does this)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from foundation.settings import Settings
from gateway.app import create_app
from gateway.auth.permissions import ACCESS, PLATFORM, Access
from gateway.auth.principal import ROLE_SCOPES, ROLES

BEGIN = "<!-- access table: written by `python -m gateway.permissions_doc docs/security.md`; do not edit by hand -->"
END = "<!-- end of the access table -->"


def _needs(access: Access) -> str:
    if access.public:
        return "public"
    if not access.scopes:
        return "any credential"
    return ", ".join("platform administrator" if s == PLATFORM else f"`{s}`" for s in access.scopes)


def render(table: dict[tuple[str, str], Access]) -> str:
    lines = ["| role | its scopes |", "|---|---|"]
    for role in ROLES:
        granted = ROLE_SCOPES[role]
        lines.append(f"| `{role}` | " + ("every scope" if PLATFORM in granted else ", ".join(
            f"`{s}`" for s in sorted(granted))) + " |")
    lines += ["", "| route | needs | roles | also |", "|---|---|---|---|"]
    for (method, path), access in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        roles = "everyone" if access.public else ", ".join(f"`{r}`" for r in access.roles())
        lines.append(f"| `{method} {path}` | {_needs(access)} | {roles} | {access.also} |")
    return "\n".join(lines)


def application_table() -> dict[tuple[str, str], Access]:
    with tempfile.TemporaryDirectory() as home:
        table: dict[tuple[str, str], Access] = create_app(Settings(home=Path(home)))[ACCESS]
        return table


def rewrite(text: str, table: dict[tuple[str, str], Access]) -> str:
    """``text`` with the block between BEGIN and END replaced by the rendered table."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{render(table)}\n{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("document", type=Path)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the table differs")
    args = parser.parse_args(argv)
    text = args.document.read_text()
    wanted = rewrite(text, application_table())
    if args.check:
        if wanted != text:
            print(f"{args.document}: the access table differs from the routes' declared access; run "
                  f"`python -m gateway.permissions_doc {args.document}`", file=sys.stderr)
            return 1
        return 0
    args.document.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
