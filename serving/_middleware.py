"""The service's front door: API keys, roles, request limits, uniform errors and the audit log.

One ASGI middleware around every route:

1. routes not in :data:`~overblik.serving._routes.ROUTES` answer 404, public routes (probes,
   docs) pass without key or audit (their 404/405 as JSON too);
2. ``Authorization: Bearer <key>`` must name an active key (else 401) whose role the route
   allows (else 403);
3. POST bodies must be JSON (415) and at most ``max_body_bytes`` (413);
4. the handler fills the request's :class:`~overblik.serving._engine.RequestRecord`
   (pseudonyms, output summary) through a context variable;
5. BentoML's validation errors (400, pydantic's format) become 422 with the fields named;
6. before the answer leaves, one entry is appended to the audit log; if that fails the
   client gets 503 instead (no answer without an audit entry).

Nothing from the request path, query or body is logged: unknown paths are logged as
``(unknown)``, the access line has the route, status, latency and key id only.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread

from overblik.serving._auditlog import AuditEntry
from overblik.serving._cpr import shown_key
from overblik.serving._engine import RequestRecord, ScoringEngine
from overblik.serving._metrics import observe
from overblik.serving._problems import MAX_LISTED, ApiError, describe, item_index, problem_answer
from overblik.serving._routes import match_route
from overblik.serving._schemas import PATTERN_WORDS, ErrorResponse, FieldError

__all__ = ["AccessAuditMiddleware", "current_record", "error_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("overblik.serving.access")
_RECORD: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "overblik_request", default=None)


def current_record() -> RequestRecord:
    """The audit record of the request being handled (set by the middleware)."""
    record = _RECORD.get()
    if record is None:
        raise RuntimeError("no request record: the AccessAuditMiddleware is not installed")
    return record


def error_body(message: str, fields: list[FieldError] | None = None,
               request_id: str | None = None) -> bytes:
    """The JSON of an :class:`ErrorResponse` (the first :data:`MAX_LISTED` fields)."""
    fields = fields or []
    return ErrorResponse(error=message, fields=fields[:MAX_LISTED],
                         more=max(len(fields) - MAX_LISTED, 0), request_id=request_id
                         ).model_dump_json().encode()


# Six digits in a row could be a birth date DDMMYY: with four more digits of the id or of a
# batch item's index (<id>-1234) the privacy scans (and /feedback's reason check) would read a
# CPR number where there is none.
_DIGIT_RUN = re.compile(r"[0-9]{6}")


def withdrawn_message(engine: ScoringEngine) -> str:
    """Why the service answers no scores: the board's approval of its version is gone."""
    return (f"{engine.model.name} version {engine.model.version} may no longer serve, so no "
            f"scores are answered: {engine.watch.withdrawn}")


def new_request_id() -> str:
    """A random request id (32 hex digits) in which no CPR number can be read, with or
    without a batch item's ``-<index>``."""
    while _DIGIT_RUN.search(request_id := uuid.uuid4().hex):
        pass
    return request_id


def _field_path(loc: list[Any]) -> str:
    """``items[3].cpr`` from a pydantic location; a client's own dict keys (feature names)
    are shown only when they look like feature names (never a number a client typed)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("root", "[key]"):  # "[key]": the dict key itself is at fault
            name = shown_key(str(part))
            out += f".{name}" if out else name
    return out or "body"


_QUOTED = re.compile(r"'(.*)'")


def _message(err: dict[str, Any]) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", "is invalid"))
    if kind == "missing":
        return "is missing: add it"
    if kind == "string_pattern_mismatch":
        quoted = _QUOTED.search(msg)
        allowed = PATTERN_WORDS.get(quoted[1] if quoted else "")
        return f"may hold only {allowed}" if allowed else "holds characters it may not hold"
    if kind == "too_short" and msg.startswith("List"):
        return "is empty: give at least one"
    if kind == "extra_forbidden":
        return "is not a known field: remove it or check its spelling"
    if kind == "json_invalid":
        return f"is not valid JSON ({msg.removeprefix('Invalid JSON: ')})"
    return msg.removeprefix("Value error, ")


def rewrite_validation(body: bytes) -> tuple[str, list[FieldError]]:
    """BentoML's 400 body (pydantic errors without input values) as message and fields
    (every one: each bad item of a batch is named)."""
    try:
        data = json.loads(body)
    except ValueError:
        return "invalid request", []
    details = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(details, list):
        return "invalid request", []
    fields = [FieldError(field=_field_path(list(d.get("loc", []))), message=_message(d),
                         index=item_index(list(d.get("loc", []))))
              for d in details if isinstance(d, dict)]
    return f"invalid request: {describe(fields)}", fields


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def duplicate_key(body: bytes) -> str | None:
    """The first key that appears twice in one object of a JSON body; None when none does
    (or when the body is no JSON: the app's parser says so)."""
    try:
        json.loads(body, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as found:
        return found.key
    except (ValueError, RecursionError):
        return None
    return None


class _Reply(Exception):
    """Answer now with this status and error (raised before the app is called)."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.headers = headers or []


class _Sender:
    """Wraps ``send``: audit before the first byte leaves; rewrite validation errors."""

    def __init__(self, owner: AccessAuditMiddleware, send: Send, engine: ScoringEngine,
                 record: RequestRecord) -> None:
        self.owner, self.send, self.engine, self.record = owner, send, engine, record
        self.started = False  # a response start reached the client (or is held for rewrite)
        self.held = False
        self.dropped = False
        self.buffer: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if self.dropped:  # the client already has the 503 of a failed audit append
            return
        record = self.record
        if message["type"] == "http.response.start":
            self.started = True
            if message["status"] == 400:  # BentoML's validation error: rewritten below
                self.held = True
                return
            self.dropped = not await self.owner._start(self.send, self.engine, record, message)
            return
        if message["type"] == "http.response.body" and self.held:
            self.buffer.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            self.held = False
            text, fields = rewrite_validation(b"".join(self.buffer))
            record.summary = {"error": 422, "fields": [f.field for f in fields[:MAX_LISTED]]}
            await self.owner._json(self.send, self.engine, record, 422,
                                   error_body(text, fields, record.request_id))
            return
        await self.send(message)


class _PublicSender:
    """Wraps ``send`` on the public routes: Starlette's plain-text 404 and 405 (a POST to
    /healthz, an unknown Swagger UI asset) become the JSON error every other answer has."""

    def __init__(self, send: Send, path: str) -> None:
        self.send, self.path = send, path
        self.replacing = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = message.get("headers", [])
            kind = next((v for k, v in headers if k.lower() == b"content-type"), b"")
            if status >= 400 and b"json" not in kind:
                self.replacing = True
                text = (f"{self.path} takes GET" if status == 405 else
                        "no such endpoint or file; GET /docs lists the endpoints"
                        if status == 404 else "the request cannot be answered")
                body = error_body(text)
                kept = [(k, v) for k, v in headers
                        if k.lower() not in (b"content-type", b"content-length")]
                await self.send({**message, "headers": [
                    *kept, (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]})
                await self.send({"type": "http.response.body", "body": body,
                                 "more_body": False})
            else:
                await self.send(message)
            return
        if message["type"] == "http.response.body" and self.replacing:
            return  # the JSON body has been sent in its place
        await self.send(message)


class AccessAuditMiddleware:
    """ASGI middleware: access control, limits and the audit log (see module docs).

    Parameters
    ----------
    app
        The BentoML application.
    engine
        Returns the running :class:`ScoringEngine` (None before the service has started).
    """

    def __init__(self, app: ASGIApp, engine: Callable[[], ScoringEngine | None]) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = match_route(scope["path"])
        if rule is not None and rule.public:
            engine = self.engine()
            if rule.path == "/readyz" and engine is not None and engine.watch.withdrawn:
                # Not ready: a load balancer takes the instance out while the board's
                # approval of its version is withdrawn.
                await self._plain(send, 503, withdrawn_message(engine))
                return
            await self.app(scope, receive, _PublicSender(send, rule.path))
            return
        engine = self.engine()
        record = RequestRecord(request_id=new_request_id(),
                               endpoint=rule.path if rule else "(unknown)",
                               method=str(scope["method"])[:10])
        if engine is None:
            await self._plain(send, 503, "the service is starting", record.request_id)
            return
        try:
            receive = await self._admit(scope, receive, engine, record)
        except _Reply as reply:
            record.summary = {"error": reply.status, "field": reply.field}
            await self._answer_now(send, engine, record, reply)
            return
        token = _RECORD.set(record)
        sender = _Sender(self, send, engine, record)
        try:
            await self.app(scope, receive, sender)
        except Exception as exc:  # nothing is answered unaudited, not even a crash
            logger.error("request %s to %s failed: %s", record.request_id, record.endpoint,
                         type(exc).__name__)
            if sender.started:
                raise
        finally:
            _RECORD.reset(token)
        if not sender.started:
            record.summary = {"error": 500}
            await self._json(send, engine, record, 500, error_body(
                "the service failed to answer; the request id is in the audit log",
                request_id=record.request_id))

    async def _admit(self, scope: Scope, receive: Receive, engine: ScoringEngine,
                     record: RequestRecord) -> Receive:
        """Check route, key, role, content type and size; return a replaying receive."""
        rule = match_route(scope["path"])
        headers: dict[str, str] = {}
        keys_sent = 0
        for k, v in scope.get("headers", []):
            name = k.decode("latin-1").lower()
            keys_sent += name == "authorization"
            headers[name] = v.decode("latin-1")
        if keys_sent > 1:
            # Which would count? Refused rather than one picked silently.
            raise _Reply(400, "send one Authorization header, not several", "Authorization")
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        key = None
        if scheme.lower() == "bearer" and token.strip():
            known, key = engine.keys.cached(token.strip())
            if not known:  # ask the store off the event loop
                key = await anyio.to_thread.run_sync(engine.keys.authenticate, token.strip())
        challenge = [(b"www-authenticate", b'Bearer realm="overblik"')]
        if key is None:
            raise _Reply(401, "missing, unknown or revoked API key: send 'Authorization: "
                         "Bearer <key>' with a key from `overblik keys create`",
                         "Authorization", challenge)
        record.key_id = key.key_id  # a revoked key's use is logged under its id
        if not key.active:
            raise _Reply(401, f"this API key ({key.key_id}) was revoked at {key.revoked_at}: "
                         "ask the service's administrator for a new one (`overblik keys "
                         "create`)", "Authorization", challenge)
        record.role = key.role
        if rule is None:
            raise _Reply(404, "no such endpoint; GET /docs lists them")
        if scope["method"] != rule.method:
            raise _Reply(405, f"{rule.path} takes {rule.method}", None,
                         [(b"allow", rule.method.encode())])
        assert rule.roles is not None
        if key.role not in rule.roles:
            raise _Reply(403, f"the role {key.role} may not use {rule.path}; it is for "
                         f"{', '.join(sorted(rule.roles))}", "Authorization")
        if rule.uses_model and engine.watch.withdrawn:
            raise _Reply(503, withdrawn_message(engine))
        if rule.method != "POST":
            return receive
        kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _Reply(415, "send the body as JSON (Content-Type: application/json)",
                         "Content-Type")
        limit = engine.settings.max_bulk_body_bytes if rule.bulk else \
            engine.settings.max_body_bytes
        advice = ("send fewer citizens" if rule.bulk else "split the batch"
                  if rule.path == "/score/batch" else "send only what the request needs")
        too_large = f"the body is larger than {limit:,} bytes; {advice}"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Reply(413, too_large, "body")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Reply(400, "the client disconnected", "body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _Reply(413, too_large, "body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # JSON parsers keep the last of a key given twice ({"cpr": A, ..., "cpr": B} scores
        # B): a client that sends two values has a bug, and neither may be what it meant.
        twice = duplicate_key(body)
        if twice is not None:
            shown = shown_key(twice)
            raise _Reply(422, f"the key {shown!r} appears twice in one object of the body: "
                         "send each key once", shown)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _start(self, send: Send, engine: ScoringEngine, record: RequestRecord,
                     message: Message) -> bool:
        """Append the audit entry, then let the response start; False (and a 503 sent)
        when the log cannot be written, or the refusal sent when a decision's check fails
        where it is appended (a decision on the same score came first)."""
        try:
            audited = await self._audit(engine, record, int(message["status"]))
        except ApiError as refused:
            record.kind, record.pseudonyms, record.check = "request", [], None
            text, fields, record.summary = problem_answer(refused)
            await self._json(send, engine, record, refused.status,
                             error_body(text, fields, record.request_id))
            return False
        if audited:
            headers = [*message.get("headers", []),
                       (b"x-request-id", record.request_id.encode())]
            await send({**message, "headers": headers})
            return True
        body = error_body("the audit log cannot be written, so the request is not answered; "
                          "try again later", request_id=record.request_id)
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"x-request-id", record.request_id.encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return False

    async def _json(self, send: Send, engine: ScoringEngine, record: RequestRecord,
                    status: int, body: bytes,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Send a whole JSON answer, audited first."""
        start = {"type": "http.response.start", "status": status,
                 "headers": [(b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode()), *(headers or [])]}
        if await self._start(send, engine, record, start):
            await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _audit(self, engine: ScoringEngine, record: RequestRecord, status: int) -> bool:
        latency = (time.perf_counter() - record.started) * 1000
        entry = AuditEntry(kind="feedback" if record.kind == "feedback" else "request",
                           request_id=record.request_id, endpoint=record.endpoint,
                           method=record.method, status=status, latency_ms=round(latency, 3),
                           key_id=record.key_id, role=record.role, model=engine.model.name,
                           model_version=engine.model.version,
                           pseudonyms=tuple(record.pseudonyms), summary=record.summary,
                           check=record.check)
        try:
            await asyncio.wrap_future(engine.audit_writer.submit(entry))
        except ApiError:
            raise
        except Exception as exc:  # any store failure: answer 503, never unaudited
            logger.error("audit log append failed for request %s: %s", record.request_id,
                         type(exc).__name__)
            return False
        observe(record.endpoint, status, (time.perf_counter() - record.started))
        logger.info("%s %s %s %d %.1fms key=%s", record.request_id, record.method,
                    record.endpoint, status, latency, record.key_id or "-")
        return True

    async def _answer_now(self, send: Send, engine: ScoringEngine, record: RequestRecord,
                          reply: _Reply) -> None:
        fields = [FieldError(field=reply.field, message=reply.message)] if reply.field else []
        await self._json(send, engine, record, reply.status,
                         error_body(reply.message, fields, record.request_id), reply.headers)

    async def _plain(self, send: Send, status: int, message: str,
                     request_id: str | None = None) -> None:
        """An error answered without the audit log (no store yet, or a public probe)."""
        body = error_body(message, request_id=request_id)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
