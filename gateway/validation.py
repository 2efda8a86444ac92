"""Every request checked in one place before a handler sees it: against the OpenAPI document, and for what
PostgreSQL cannot store.

Two middlewares:

- ``refuse_unstorable_text`` (before authentication): path parameters, query parameter names and values, and
  the headers the gateway reads must be text PostgreSQL can store, with no NUL character and no lone surrogate
  (what a ``\\udc80`` JSON escape or a byte that is not UTF-8 in a header becomes);
- ``validate_request`` (after authentication and authorization): the operation's path, query and header
  parameters and its JSON or form body are validated against the schemas ``gateway.openapi`` publishes (types,
  bounds, lengths, patterns, enums, required fields), so the document and the code cannot disagree; a JSON body
  must also hold storable text at any depth, no integer beyond PostgreSQL's ``bigint`` and no number that is
  not finite, whatever its schema says.

Both answer a 400 problem naming each parameter and why (``invalid_params``), never the value sent. Multipart
bodies are streamed by their handlers, which check their text fields with ``check_form``. Handlers read a
validated JSON body with ``json_object``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from gateway.problems import Problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BIGINT = (-(2**63), 2**63 - 1)  # PostgreSQL's widest integer column
MAX_JSON_BYTES = 4 * 1024 * 1024
READ_HEADERS = ("Authorization", "Content-Type", "Range", "If-Range", "Sec-WebSocket-Protocol", "Upgrade")
JSON_BODY = web.RequestKey("validated_json_body", object)
INTEGER = re.compile(r"-?[0-9]{1,100}")
NUMBER = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?")
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
                     r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


def rfc3339(value: str) -> datetime | None:
    """An RFC 3339 time (``2026-11-26T10:00:00Z``, with a time zone), or None when ``value`` is not one."""
    if not RFC3339.fullmatch(value):
        return None
    text = value[:-1] + "+00:00" if value[-1] in "zZ" else value
    try:
        return datetime.fromisoformat(text[:10] + "T" + text[11:])
    except ValueError:  # a day or hour that does not exist
        return None


FORMATS = FormatChecker(formats=())
FORMATS.checks("date-time")(lambda value: not isinstance(value, str) or rfc3339(value) is not None)


def unstorable(value: str) -> str | None:
    """Why PostgreSQL could not store this text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate, or bytes that are not UTF-8)"
    return None


def check_text(value: str, where: str) -> str:
    """``value`` when PostgreSQL can store it; else a 400 problem that says which field is wrong."""
    reason = unstorable(value)
    if reason is not None:
        raise invalid([(where, reason)])
    return value


def invalid(reasons: Iterable[tuple[str, str]]) -> Problem:
    """A 400 problem listing each invalid parameter and why."""
    items = [{"name": name, "reason": reason} for name, reason in reasons]
    detail = "; ".join(f"{i['name']} {i['reason']}" for i in items[:5])
    return Problem(400, "Bad Request", detail, invalid_params=items)


# -- compiled operations -------------------------------------------------------------------------------------------
@dataclass
class Parameter:
    name: str
    where: str  # path, query or header
    required: bool
    schema: dict[str, Any]
    validator: Draft202012Validator


@dataclass
class Operation:
    parameters: list[Parameter] = field(default_factory=list)
    json_body: Draft202012Validator | None = None
    form_body: Draft202012Validator | None = None  # application/x-www-form-urlencoded
    multipart_fields: Draft202012Validator | None = None  # the text parts of a multipart/form-data body
    multipart_props: dict[str, Any] = field(default_factory=dict)
    body_required: bool = False


def _validator(schema: dict[str, Any], components: dict[str, Any]) -> Draft202012Validator:
    # "#/components/schemas/..." references resolve against this root, as they do in the document
    return Draft202012Validator({"components": components, "allOf": [schema]}, format_checker=FORMATS)


def _text_fields(schema: dict[str, Any]) -> dict[str, Any]:
    """A multipart schema without its binary parts: what its text fields must be."""
    props = {k: v for k, v in schema.get("properties", {}).items() if v.get("format") != "binary"}
    return {"type": "object", "properties": props}


def compile_operations(document: dict[str, Any]) -> dict[tuple[str, str], Operation]:
    """(METHOD, path template) -> its compiled validators, for every operation of an OpenAPI 3.1 document."""
    components = document.get("components", {})
    operations: dict[tuple[str, str], Operation] = {}
    for path, item in document["paths"].items():
        for method, op in item.items():
            compiled = Operation()
            for param in op.get("parameters", []):
                if param["in"] in ("path", "query", "header"):
                    compiled.parameters.append(Parameter(param["name"], param["in"], bool(param.get("required")),
                                                         param["schema"], _validator(param["schema"], components)))
            content = op.get("requestBody", {}).get("content", {})
            compiled.body_required = bool(op.get("requestBody", {}).get("required"))
            if "application/json" in content:
                compiled.json_body = _validator(content["application/json"]["schema"], components)
            if "application/x-www-form-urlencoded" in content:
                compiled.form_body = _validator(content["application/x-www-form-urlencoded"]["schema"], components)
            if "multipart/form-data" in content:
                text_fields = _text_fields(content["multipart/form-data"]["schema"])
                compiled.multipart_fields = _validator(text_fields, components)
                compiled.multipart_props = text_fields["properties"]
            operations[(method.upper(), path)] = compiled
    return operations


OPERATIONS = web.AppKey("validated_operations", dict)


def _operation(request: web.Request) -> Operation | None:
    resource = request.match_info.route.resource
    if resource is None or OPERATIONS not in request.app:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    found: Operation | None = request.app[OPERATIONS].get((method, resource.canonical))
    return found


# -- why a value is invalid, in words (never repeating the value) ----------------------------------------------------
def _type_names(value: Any) -> str:
    names = value if isinstance(value, list) else [value]
    words = {"integer": "an integer", "number": "a number", "string": "text", "boolean": "true or false",
             "object": "an object", "array": "a list", "null": "null"}
    return " or ".join(words.get(str(n), str(n)) for n in names)


def _reason(error: ValidationError) -> str:
    kind, bound = error.validator, error.validator_value
    reasons: dict[str, Callable[[], str]] = {
        "type": lambda: f"must be {_type_names(bound)}",
        "enum": lambda: f"must be one of {', '.join(json.dumps(v) for v in bound)}, "
                        f"not {json.dumps(error.instance)[:100]}",
        "const": lambda: f"must be {json.dumps(bound)}",
        "minimum": lambda: f"must be at least {bound}",
        "maximum": lambda: f"must be at most {bound}",
        "exclusiveMinimum": lambda: f"must be more than {bound}",
        "exclusiveMaximum": lambda: f"must be less than {bound}",
        "minLength": lambda: f"must have at least {bound} characters",
        "maxLength": lambda: f"must have at most {bound} characters",
        "pattern": lambda: f"must match {bound}",
        "format": lambda: "must be an RFC 3339 time with a time zone, e.g. 2026-11-26T10:00:00Z"
        if bound == "date-time" else f"must be a {bound}",
        "minItems": lambda: f"must have at least {bound} items",
        "maxItems": lambda: f"must have at most {bound} items",
        "uniqueItems": lambda: "must not repeat an item",
        "minProperties": lambda: f"must have at least {bound} fields",
        "maxProperties": lambda: f"must have at most {bound} fields",
        "required": lambda: "needs " + ", ".join(f for f in bound if isinstance(error.instance, dict)
                                                  and f not in error.instance),
        "additionalProperties": lambda: "has fields the API does not know: " + ", ".join(
            sorted(str(k)[:64] for k in error.instance if k not in error.schema.get("properties", {}))[:10])
        if isinstance(error.instance, dict) else "is not allowed",
    }
    return reasons.get(str(kind), lambda: "does not match what the API accepts")()


def _where(base: str, error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{base}{path}"


def _errors(validator: Draft202012Validator, instance: Any, base: str, most: int = 10) -> list[tuple[str, str]]:
    """Each invalid field once (the most telling reason for it), the shallowest first."""
    found: dict[str, str] = {}
    errors = sorted(validator.iter_errors(instance),
                    key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    for error in errors:
        where = _where(base, error)
        if where not in found:
            best = best_match([e for e in errors if _where(base, e) == where]) or error
            found[where] = _reason(best)
        if len(found) >= most:
            break
    return list(found.items())


# -- parameters --------------------------------------------------------------------------------------------------
def _types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    return set(kind) if isinstance(kind, list) else {kind} if isinstance(kind, str) else set()


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    """A parameter's text as the JSON value its schema describes (integers and numbers are parsed)."""
    kinds = _types(schema)
    if "integer" in kinds and INTEGER.fullmatch(raw):
        return int(raw)
    if "number" in kinds and NUMBER.fullmatch(raw):
        number = float(raw)
        return number if math.isfinite(number) else raw
    if "boolean" in kinds and raw in ("true", "false"):
        return raw == "true"
    return raw


def _parameters(request: web.Request, operation: Operation) -> list[tuple[str, str]]:
    sources: dict[str, Mapping[str, str]] = {"path": request.match_info, "query": request.query,
                                             "header": request.headers}
    problems: list[tuple[str, str]] = []
    for param in operation.parameters:
        raw = sources[param.where].get(param.name)
        where = f"{param.where}.{param.name}"
        if raw is None:
            if param.required:
                problems.append((where, "is required"))
            continue
        problems += _errors(param.validator, _coerce(raw, param.schema), where)
    return problems


# -- bodies ------------------------------------------------------------------------------------------------------
def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def storable_json(value: Any, base: str = "body") -> list[tuple[str, str]]:
    """Where a JSON value holds text, an integer or a number PostgreSQL cannot store (iteratively: depth-safe)."""
    pending: list[tuple[Any, str]] = [(value, base)]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            reason = unstorable(item)
            if reason:
                return [(where, reason)]
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not BIGINT[0] <= item <= BIGINT[1]:
                return [(where, "is beyond the range of a 64-bit integer")]
        elif isinstance(item, float):
            if not math.isfinite(item):
                return [(where, "must be a finite number")]
        elif isinstance(item, dict):
            for key, inner in item.items():
                reason = unstorable(key)
                if reason:
                    return [(f"{where} (a field name)", reason)]
                pending.append((inner, f"{where}.{key[:64]}"))
        elif isinstance(item, list):
            pending.extend((inner, f"{where}[{i}]") for i, inner in enumerate(item))
    return []


async def _read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise Problem(413, "Payload Too Large", f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    raw = bytearray()
    # read(n) gives what has arrived so far (up to n): the body is read until it ends or passes the limit
    while len(raw) <= MAX_JSON_BYTES and (piece := await request.content.read(MAX_JSON_BYTES + 1 - len(raw))):
        raw += piece
    if len(raw) > MAX_JSON_BYTES:
        raise Problem(413, "Payload Too Large", f"JSON bodies are limited to {MAX_JSON_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        raise invalid([("body", "is not valid JSON")]) from None
    except RecursionError:
        raise invalid([("body", "is nested too deeply")]) from None


async def _json_body(request: web.Request, operation: Operation) -> list[tuple[str, str]]:
    assert operation.json_body is not None
    body = await _read_json(request)
    if body is None:
        if operation.body_required:
            return [("body", "is required (a JSON object)")]
        body = {}
    problems = storable_json(body) or _errors(operation.json_body, body, "body")
    request[JSON_BODY] = body
    return problems


async def _form_body(request: web.Request, operation: Operation) -> list[tuple[str, str]]:
    assert operation.form_body is not None
    try:
        form = await request.post()
    except ValueError:  # not valid form encoding (or not UTF-8)
        return [("body", "is not a valid application/x-www-form-urlencoded body")]
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    problems = [(f"form.{k[:64]}", r) for k, v in fields.items() for r in [unstorable(k) or unstorable(v)] if r]
    return problems or _errors(operation.form_body, fields, "form")


def check_form(request: web.Request, parts: Iterable[tuple[str, str]]) -> None:
    """The text parts of a multipart body (in the order they came; a name may repeat), against what the
    operation's document says of its fields: a 400 problem when one is wrong. Handlers that stream a multipart
    body call it once they have read the parts; parts the document does not name are left to the handler."""
    operation = _operation(request)
    if operation is None or operation.multipart_fields is None:
        return
    fields: dict[str, Any] = {}
    for name, value in parts:
        schema = operation.multipart_props.get(name)
        if schema is None:
            continue
        if "array" in _types(schema):
            fields.setdefault(name, []).append(_coerce(value, schema.get("items", {})))
        else:
            fields[name] = _coerce(value, schema)
    problems = _errors(operation.multipart_fields, fields, "form")
    if problems:
        raise invalid(problems)


# -- the middlewares ---------------------------------------------------------------------------------------------
@web.middleware
async def refuse_unstorable_text(request: web.Request, handler: Handler) -> web.StreamResponse:
    problems = [(f"path.{k}", r) for k, v in request.match_info.items() for r in [unstorable(v)] if r]
    problems += [(f"query.{k[:64]}", r) for k, v in request.query.items() for r in [unstorable(k) or unstorable(v)]
                 if r]
    problems += [(f"header.{k}", r) for k in READ_HEADERS for r in [unstorable(request.headers.get(k, ""))] if r]
    if problems:
        raise invalid(problems)
    return await handler(request)


@web.middleware
async def validate_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    operation = _operation(request)
    if operation is not None:
        problems = _parameters(request, operation)
        content_type = request.content_type
        if not problems and operation.json_body is not None:
            problems = await _json_body(request, operation)
        elif not problems and operation.form_body is not None and content_type == "application/x-www-form-urlencoded":
            problems = await _form_body(request, operation)
        if problems:
            raise invalid(problems)
    return await handler(request)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, validated by ``validate_request``: a JSON object, else a 400 problem."""
    body: Any = request.get(JSON_BODY)
    if body is None:
        body = await _read_json(request)
        problems = storable_json(body)
        if problems:
            raise invalid(problems)
    if not isinstance(body, dict):
        raise Problem(400, "Bad Request", "the body must be a JSON object")
    return body
