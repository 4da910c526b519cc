"""Reading requests safely: capped bodies, content types, idempotency keys, the principal."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope

from orderfast.http.auth import Principal
from orderfast.http.guard import PRINCIPAL
from orderfast.http.problems import Problem
from orderfast.services.errors import InvalidInputError

MAX_IDEMPOTENCY_KEY_LEN = 255


def body_unreadable() -> Problem:
    return Problem(
        400,
        "body-unreadable",
        "Request body unreadable",
        "the body ended early or its chunked transfer encoding is malformed",
    )


def principal(request: Request) -> Principal:
    p: Principal = request.scope[PRINCIPAL]
    return p


class BodyDeadlines:
    """The body-read deadline of every request of this worker, enforced by one sweeper task.

    A request costs a dict insert and a delete instead of a timer of its own (``asyncio.timeout``
    was 8 % of a quote's samples under load). The sweeper wakes every ``min(0.25, timeout / 4)``
    seconds while any request is reading its body, and exits when none is.
    """

    def __init__(self) -> None:
        self._due: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._interval = 0.25

    def enter(self, timeout: float) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None, "a request runs in a task"
        loop = task.get_loop()
        self._due[task] = loop.time() + timeout
        self._interval = min(self._interval, timeout / 4)
        if self._sweeper is None or self._sweeper.done() or self._sweeper.get_loop() is not loop:
            self._sweeper = loop.create_task(self._sweep())
        return task

    def bounded(self, timeout: float) -> Bounded:
        """``with deadlines.bounded(t):`` around the reads of one body: past ``t`` seconds the
        reading task's cancellation comes out as :class:`BodyTimeout`; any other cancellation
        passes through as it came."""
        return Bounded(self, self.enter(timeout))

    def leave(self, task: asyncio.Task[Any]) -> bool:
        """Forgets the task; True when its deadline is what cancelled it."""
        self._due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            return True
        return False

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            await asyncio.sleep(self._interval)
            now = loop.time()
            for task, due in list(self._due.items()):
                if due <= now:
                    del self._due[task]
                    self._expired.add(task)
                    task.cancel()


class BodyTimeout(Exception):
    """A body did not arrive within its deadline."""


class Bounded:
    __slots__ = ("_deadlines", "_task")

    def __init__(self, deadlines: BodyDeadlines, task: asyncio.Task[Any]) -> None:
        self._deadlines = deadlines
        self._task = task

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        expired = self._deadlines.leave(self._task)
        if expired and kind is not None and issubclass(kind, asyncio.CancelledError):
            self._task.uncancel()
            raise BodyTimeout from None


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How much body a request may send, and how long it may take (ORDERFAST_MAX_BODY_BYTES,
    ORDERFAST_BODY_TIMEOUT), and the worker's deadline sweeper that enforces the time."""

    max_bytes: int
    timeout: float
    deadlines: BodyDeadlines


async def read_json_body(request: Request, limits: BodyLimits, *, untyped: bool = False) -> bytes:
    """The raw body, refused with 413 past the size limit, 408 past the time limit and 415 unless
    it is JSON — or, unless ``untyped``, when it is not empty and says nothing of its type."""
    return await read_body(request.scope, request.receive, limits, untyped=untyped)


async def read_body(scope: Scope, receive: Receive, limits: BodyLimits, *, untyped: bool = False) -> bytes:
    """``read_json_body`` for an endpoint that is a plain ASGI app (no ``Request`` to build)."""
    limit = limits.max_bytes
    content_type: str | None = None
    declared: int | None = None  # the Content-Length (the server has already refused one not a number)
    seen_length = False
    for name, value in scope["headers"]:  # the first of each (a second Content-Type is refused earlier)
        if name == b"content-type":
            if content_type is None:
                content_type = value.decode("latin-1")
        elif name == b"content-length" and not seen_length:
            seen_length = True
            declared = int(value) if value.isdigit() else None
    if content_type is not None:
        media = content_type.partition(";")[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise _unsupported_media_type()
    if declared is not None and declared > limit:
        raise _too_large(limit)
    if declared == 0:
        body = b""
    else:
        body = await _read(receive, limits, declared)
    if body and content_type is None and not untyped:  # a body says what it is; an empty one need not
        raise _unsupported_media_type()
    return body


async def _read(receive: Receive, limits: BodyLimits, declared: int | None) -> bytes:
    # A body of known length is whole when that many bytes have come: Granian marks even the last
    # chunk ``more_body`` and sends the end as a message of its own, and each receive() is a trip
    # through its runtime and a wake-up of the event loop (10-20 µs of this thread).
    limit, body_timeout = limits.max_bytes, limits.timeout
    chunks = []
    size = 0
    # A body trickling in (slowloris on the body) is cut off: the whole body within the timeout.
    try:
        with limits.deadlines.bounded(body_timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    # The server ends the body this way both when the client goes away and when the
                    # body cannot be decoded (a malformed chunk): a client error, never a 500.
                    raise body_unreadable()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
                if size == declared or not message.get("more_body", False):
                    break
    except BodyTimeout:
        raise Problem(408, "request-timeout", "Request timeout", f"send the body within {body_timeout:g} s") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _unsupported_media_type() -> Problem:
    return Problem(415, "unsupported-media-type", "Unsupported media type", "send Content-Type: application/json")


async def read_json_document(request: Request, limits: BodyLimits, *, empty: Any = None) -> Any:
    """The body parsed as JSON (400 when it is not); an empty body is ``empty`` when given."""
    raw = await read_json_body(request, limits)
    if not raw and empty is not None:
        return empty
    return parse_json(raw)


def parse_json(raw: bytes) -> Any:
    """The one JSON rule for every body the Rust core does not parse itself (catalog, API keys,
    refunds, webhooks), the same as the core's: not JSON, bad UTF-8 or nesting deeper than 128 is a
    400; a key twice in one object is a 422 ``duplicate_key`` (no layer may read the first while
    another reads the last)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise Problem(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON: {e}") from None
    try:
        tree = json.loads(raw, object_pairs_hook=_Pairs)  # every object's keys, duplicates kept
    except RecursionError:
        raise _too_deep() from None
    _check_shape(tree)
    return doc


MAX_DEPTH = 128  # as the Rust core's parser (serde_json's recursion limit)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs in order, duplicates included."""


def _check_shape(tree: Any) -> None:
    stack: list[tuple[list[Any], str, int]] = [(tree, "", 1)] if isinstance(tree, list) else []
    while stack:
        node, pointer, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(node, _Pairs):
            seen: set[str] = set()
            for key, value in node:
                at = pointer + "/" + key.replace("~", "~0").replace("/", "~1")
                if key in seen:
                    raise InvalidInputError([(at, "duplicate_key", "this field appears more than once")])
                seen.add(key)
                if isinstance(value, list):
                    stack.append((value, at, depth + 1))
        else:
            stack.extend(
                (value, f"{pointer}/{i}", depth + 1) for i, value in enumerate(node) if isinstance(value, list)
            )


def _too_deep() -> Problem:
    return Problem(400, "malformed-json", "Malformed JSON", f"the body nests deeper than {MAX_DEPTH} levels")


def _too_large(limit: int) -> Problem:
    return Problem(413, "payload-too-large", "Payload too large", f"the body limit is {limit} bytes")


def idempotency_key(scope: Scope) -> str:
    """The ``Idempotency-Key`` header: a structured-field string (quoted) or a bare token, from the
    scope's raw headers (the first; a second is refused earlier)."""
    raw: str | None = next((v.decode("latin-1") for n, v in scope["headers"] if n == b"idempotency-key"), None)
    if raw is None:
        raise Problem(
            400,
            "idempotency-key-missing",
            "Idempotency-Key required",
            "send an Idempotency-Key header (a unique value per order, e.g. a UUID)",
        )
    key = raw.strip(" \t")  # HTTP's optional whitespace, nothing more (str.strip() also eats \x1c-\x1f)
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    return checked_idempotency_key(key, "optionally in double quotes")


def checked_idempotency_key(key: str, form: str) -> str:
    """The rule for every ingress's idempotency keys (so that a key made over one can be sent over
    another): 1 to 255 visible ASCII characters, no quote or backslash; 400 otherwise."""
    visible = key.isascii() and key.isprintable() and " " not in key
    if not (1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LEN and visible) or '"' in key or "\\" in key:
        raise Problem(
            400,
            "idempotency-key-invalid",
            "Invalid Idempotency-Key",
            f"1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters, {form}",
        )
    return key
