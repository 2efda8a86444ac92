"""Backward compatibility of Avro schemas (Avro specification, "Schema Resolution").

A new schema is backward compatible with an old one when a reader using the new schema can read every
event written with the old one. ``incompatibilities(new, old)`` lists every reason it cannot, empty if it can.
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


def _names(schema: Any, namespace: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every named type defined in ``schema``, by short and full name."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for branch in schema:
            _names(branch, namespace, out)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "enum", "fixed", "error"):
            ns = schema.get("namespace", namespace)
            name = schema["name"]
            full = name if "." in name else (f"{ns}.{name}" if ns else name)
            out[full] = out[full.rsplit(".", 1)[-1]] = schema
            for field in schema.get("fields", []):
                _names(field["type"], ns, out)
        elif kind == "array":
            _names(schema["items"], namespace, out)
        elif kind == "map":
            _names(schema["values"], namespace, out)
        elif isinstance(kind, dict | list):
            _names(kind, namespace, out)
    return out


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.rnames = _names(reader)
        self.wnames = _names(writer)
        self.problems: list[str] = []
        self._seen: set[tuple[int, int]] = set()

    def _deref(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names.get(schema, names.get(schema.rsplit(".", 1)[-1], schema))
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES and len(schema) == 1:
            return schema["type"]
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self._deref(schema["type"], names)
        return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, str):
            return schema
        return str(schema.get("type"))

    def matches(self, reader: Any, writer: Any, path: str) -> bool:
        before = len(self.problems)
        self.check(reader, writer, path)
        ok = len(self.problems) == before
        del self.problems[before:]
        return ok

    def check(self, reader: Any, writer: Any, path: str) -> None:
        reader, writer = self._deref(reader, self.rnames), self._deref(writer, self.wnames)
        rk, wk = self._kind(reader), self._kind(writer)
        if wk == "union":
            for i, branch in enumerate(writer):
                self.check(reader, branch, f"{path}<branch {i}>")
            return
        if rk == "union":
            if not any(self.matches(branch, writer, path) for branch in reader):
                self.problems.append(f"{path}: no branch of the new union reads the old type {wk}")
            return
        if rk in PRIMITIVES or wk in PRIMITIVES:
            if rk != wk and rk not in PROMOTIONS.get(wk, set()):
                self.problems.append(f"{path}: type changed from {wk} to {rk}")
            return
        if rk != wk:
            self.problems.append(f"{path}: type changed from {wk} to {rk}")
            return
        if rk == "array":
            self.check(reader["items"], writer["items"], f"{path}[]")
        elif rk == "map":
            self.check(reader["values"], writer["values"], f"{path}{{}}")
        elif rk == "fixed":
            if reader["size"] != writer["size"]:
                self.problems.append(f"{path}: fixed size changed from {writer['size']} to {reader['size']}")
        elif rk == "enum":
            missing = set(writer["symbols"]) - set(reader["symbols"])
            if missing and "default" not in reader:
                self.problems.append(f"{path}: enum symbols removed without a default: {sorted(missing)}")
        elif rk in ("record", "error"):
            self._record(reader, writer, path)

    def _record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        rname, wname = reader["name"].rsplit(".", 1)[-1], writer["name"].rsplit(".", 1)[-1]
        if rname != wname and wname not in reader.get("aliases", []):
            self.problems.append(f"{path}: record renamed from {wname} to {rname} without an alias")
            return
        key = (id(reader), id(writer))
        if key in self._seen:
            return
        self._seen.add(key)
        wfields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            old = next((wfields[n] for n in names if n in wfields), None)
            where = f"{path}.{field['name']}" if path else field["name"]
            if old is None:
                if "default" not in field:
                    self.problems.append(f"{where}: new field without a default")
            else:
                self.check(field["type"], old["type"], where)


def incompatibilities(new: Any, old: Any) -> list[str]:
    """Reasons a reader with schema ``new`` cannot read data written with schema ``old`` (empty: compatible)."""
    checker = _Checker(new, old)
    checker.check(new, old, "")
    return checker.problems
