"""The OpenAI-compatible HTTP front: Starlette on uvicorn, on the service's event loop.

Every request passes the checks a gRPC call passes: the bearer token (the same one),
the readiness/drain gate (503 + Retry-After), then the body size before any parsing
(413), then the OpenAI parameters (`openai_api.py`), then the shared generation path
(limits, per-client admission: 429 + Retry-After, tokenization off the loop). Streams
are server-sent events ending with `data: [DONE]`; when the caller disconnects, the
generation is cancelled and its batch slots freed. Every request is counted and timed by
route template and status (`gantry_http_requests_total`, `gantry_http_request_seconds`),
and the tokens it generates are counted as the "openai" front's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import socket
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gantry.core import errors
from gantry.core.auth import BearerAuth
from gantry.core.interceptor import CallGate
from gantry.core.metrics import CollectorRegistry, HttpMetrics
from gantry.rollout import openai_api as api
from gantry.rollout.engine.types import Sample, TopLogprobs
from gantry.rollout.generation import Batch, Generation
from gantry.rollout.generator import FRONT
from gantry.rollout.model import ServedModel
from gantry.rollout.settings import RolloutSettings

log = logging.getLogger("gantry.rollout.openai")
T = TypeVar("T")
STOP_TIMEOUT_S = 10.0
UNMATCHED_ROUTE = "unmatched"  # the route label of every path no route serves
CLIENT_ID_HEADER = "x-client-id"
STATUS = {  # gRPC code of a shared-path error -> (HTTP status, OpenAI error type)
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "OUT_OF_RANGE": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_error"),
    "NOT_FOUND": (404, "not_found_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "UNIMPLEMENTED": (501, "server_error"),
    "UNAVAILABLE": (503, "server_error"),
    "DEADLINE_EXCEEDED": (504, "server_error"),
}


def translate(error: errors.GantryError, request: api.Request | None = None) -> api.OpenAIError:
    """A shared-path error in OpenAI's terms; a bad field becomes the parameter it came from."""
    status, kind = STATUS.get(error.code.name, (500, "server_error"))
    message, param = error.message, None
    if isinstance(error, errors.InvalidArgument) and error.violations:
        violation = error.violations[0]
        param = api.param_of(violation.field, request) if request else violation.field
        message = f"{param}: {violation.description}"
    retry = getattr(error, "retry_after_s", None)
    code = error.reason.lower() if status >= 429 else None
    return api.OpenAIError(status, message, kind=kind, param=param, code=code, retry_after_s=retry)


def error_response(error: api.OpenAIError) -> JSONResponse:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


class Guard:
    """ASGI middleware: token and readiness first, so nothing else runs for a refused call."""

    def __init__(self, app: ASGIApp, auth: BearerAuth | None, gate: CallGate) -> None:
        self.app, self.auth, self.gate = app, auth, gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            error = self._refusal(scope)
            if error is not None:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> api.OpenAIError | None:
        try:
            if self.auth is not None:
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
                self.auth.check(f"/openai{scope['path']}", headers)
            self.gate.check()
        except errors.Unauthenticated as exc:
            return api.OpenAIError(
                401, exc.message, kind="authentication_error", code="invalid_api_key"
            )
        except errors.GantryError as exc:
            return translate(exc)
        return None


class Measure:
    """ASGI middleware, outermost: counts and times every request (refusals included) by
    route template and status, and marks the generation it runs as the OpenAI front's."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], metrics: HttpMetrics) -> None:
        self.app, self.routes, self.metrics = app, routes, metrics

    def route(self, scope: Scope) -> str:
        """The template of the route the path matches (whatever the method), never the path."""
        for route in self.routes:
            if isinstance(route, Route) and route.matches(scope)[0] is not Match.NONE:
                return route.path_format
        return UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, status, started = self.route(scope), 500, time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        front = FRONT.set("openai")
        try:
            await self.app(scope, receive, sending)
        finally:
            FRONT.reset(front)
            # Until the last byte: a stream's whole duration, like a gRPC stream's.
            self.metrics.observe(route, status, time.perf_counter() - started)


class OpenAIFront:
    """The routes; one instance per server."""

    def __init__(
        self, settings: RolloutSettings, model: ServedModel, generation: Generation
    ) -> None:
        self.settings = settings
        self.model = model
        self.generation = generation
        self.created = int(time.time())

    # ----- plumbing -----
    async def read_json(self, request: Request) -> object:
        """The parsed body, refused with 413 past the size limit before anything is parsed."""
        limit = self.settings.openai_max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise self._too_large(limit)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise self._too_large(limit)
        try:
            return json.loads(body, parse_constant=_no_constants)
        except (ValueError, RecursionError):
            raise api.OpenAIError(400, "the request body is not valid JSON") from None

    @staticmethod
    def _too_large(limit: int) -> api.OpenAIError:
        return api.OpenAIError(
            413, f"the request body exceeds {limit} bytes", code="request_too_large"
        )

    @staticmethod
    def client_key(request: Request) -> str:
        """Who is calling, for fair admission: `x-client-id`, else the peer's host."""
        named = request.headers.get(CLIENT_ID_HEADER)
        if named:
            return named[:128]
        return request.client.host if request.client else ""

    def _fingerprint(self) -> str:
        return f"gantry-policy-v{self.model.generator.policy_version}"

    def _logprobs(
        self,
        parsed: api.Request,
        ids: list[int],
        logprobs: list[float],
        tops: list[TopLogprobs],
        offset: int = 0,
    ) -> dict[str, Any]:
        """A choice's `logprobs` object; token texts are each token decoded alone."""
        decode = self.model.generator.tokenizer.decode
        tokens = [str(decode([t])) for t in ids]
        named = [[(str(decode([t])), lp) for t, lp in top] for top in tops]
        if parsed.kind == "chat":
            return api.chat_logprobs(tokens, logprobs, named)
        return api.completion_logprobs(tokens, logprobs, named, offset)

    # ----- routes -----
    async def health(self, request: Request) -> Response:
        ready = self.model.loaded is not None
        return JSONResponse({"status": "ok" if ready else "loading"}, 200 if ready else 503)

    def _model_card(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "gantry"}

    async def list_models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_card(self.model.name)]})

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        if name not in self.model.names():
            raise api.OpenAIError(
                404, f"the model {errors.echo(name)} does not exist", code="model_not_found"
            )
        return JSONResponse(self._model_card(name))

    async def chat(self, request: Request) -> Response:
        return await self._generate("chat", request)

    async def completions(self, request: Request) -> Response:
        return await self._generate("completion", request)

    async def _generate(self, kind: api.Kind, http: Request) -> Response:
        parsed = api.parse(kind, await self.read_json(http), self.model.limits, self.model.names())
        client = self.client_key(http)
        try:
            batch = await self.generation.prepare(parsed.input, "input", client)
        except errors.GantryError as exc:
            raise translate(exc, parsed) from None
        if parsed.top_logprobs:  # an OpenAI-only option: the gRPC input has no field for it
            params = dataclasses.replace(batch.params, top_logprobs=parsed.top_logprobs)
            batch = dataclasses.replace(batch, params=params)
        if parsed.stream:
            return StreamingResponse(
                self._stream(parsed, batch, client),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            results = await until_disconnect(http, self.generation.complete(batch, client))
        except errors.GantryError as exc:
            raise translate(exc, parsed) from None
        if results is None:  # the caller left; its generation was cancelled
            return Response(status_code=499)
        body = await self.generation.runtime.run_blocking(self._response, parsed, batch, results)
        return JSONResponse(body)

    def _response(
        self, parsed: api.Request, batch: Batch, results: list[list[Sample]]
    ) -> dict[str, Any]:
        """The non-streaming body (blocking: decodes token strings for logprobs)."""
        choices = []
        for p, samples in enumerate(results):
            for sample in samples:
                choice: dict[str, Any] = {"index": p * batch.params.n + sample.index}
                logprobs = None
                if parsed.logprobs:
                    logprobs = self._logprobs(
                        parsed, sample.token_ids, sample.logprobs, sample.top_logprobs
                    )
                if parsed.kind == "chat":
                    choice["message"] = {"role": "assistant", "content": sample.text}
                else:
                    choice["text"] = sample.text
                choice["logprobs"] = logprobs
                choice["finish_reason"] = api.finish(sample.finish_reason)
                choices.append(choice)
        completion_tokens = sum(len(s.token_ids) for samples in results for s in samples)
        return {
            **self._envelope(parsed, chunk=False),
            "choices": choices,
            "usage": api.usage(sum(len(ids) for ids in batch.prompts), completion_tokens),
        }

    def _envelope(self, parsed: api.Request, *, chunk: bool, ident: str = "") -> dict[str, Any]:
        chat = parsed.kind == "chat"
        kind = (
            ("chat.completion.chunk" if chunk else "chat.completion") if chat else "text_completion"
        )
        return {
            "id": ident or f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": parsed.model,
            "system_fingerprint": self._fingerprint(),
        }

    async def _stream(self, parsed: api.Request, batch: Batch, client: str) -> AsyncIterator[str]:
        ident = f"{'chatcmpl' if parsed.kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        n = batch.params.n
        started: set[int] = set()
        offsets: dict[int, int] = {}
        completion_tokens = 0
        try:
            async for event in self.generation.stream(batch, client):
                delta = event.delta
                index = event.prompt_index * n + delta.index
                completion_tokens += len(delta.token_ids)
                logprobs = None
                if parsed.logprobs:
                    offset = offsets.get(index, 0)
                    logprobs = self._logprobs(
                        parsed, delta.token_ids, delta.logprobs, delta.top_logprobs, offset
                    )
                    offsets[index] = offset + sum(len(t) for t in logprobs.get("tokens", ()))
                choice: dict[str, Any] = {"index": index}
                if parsed.kind == "chat":
                    choice["delta"] = {"content": delta.text}
                    if index not in started:
                        choice["delta"] = {"role": "assistant", "content": delta.text}
                else:
                    choice["text"] = delta.text
                started.add(index)
                choice["logprobs"] = logprobs
                choice["finish_reason"] = api.finish(delta.finish_reason)
                chunk = {**self._envelope(parsed, chunk=True, ident=ident), "choices": [choice]}
                if parsed.include_usage:
                    chunk["usage"] = None
                yield sse(chunk)
            if parsed.include_usage:
                prompt_tokens = sum(len(ids) for ids in batch.prompts)
                yield sse(
                    {
                        **self._envelope(parsed, chunk=True, ident=ident),
                        "choices": [],
                        "usage": api.usage(prompt_tokens, completion_tokens),
                    }
                )
            yield "data: [DONE]\n\n"
        except errors.GantryError as exc:  # e.g. draining: what was produced was sent
            yield sse(translate(exc, parsed).body())

    def app(
        self, auth: BearerAuth | None, gate: CallGate, metrics: HttpMetrics | None = None
    ) -> ASGIApp:
        async def openai_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, api.OpenAIError)
            return error_response(exc)

        async def http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            code = "unknown_url" if exc.status_code == 404 else None
            message = (
                f"no route for {request.method} {errors.clip(request.url.path, 128)}"
                if exc.status_code in (404, 405)
                else str(exc.detail)
            )
            return error_response(api.OpenAIError(exc.status_code, message, code=code))

        async def gantry_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, errors.GantryError)
            return error_response(translate(exc))

        async def server_error(request: Request, exc: Exception) -> Response:
            log.exception("OpenAI front: %s %s failed", request.method, request.url.path)
            return error_response(
                api.OpenAIError(500, "internal error", kind="server_error", code="internal")
            )

        starlette = Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/v1/models", self.list_models, methods=["GET"]),
                Route("/v1/models/{model:path}", self.get_model, methods=["GET"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/completions", self.completions, methods=["POST"]),
            ],
            exception_handlers={
                api.OpenAIError: openai_error,
                errors.GantryError: gantry_error,
                HTTPException: http_error,
                Exception: server_error,  # never a bare text 500
            },
        )
        metrics = metrics or HttpMetrics(CollectorRegistry())
        return Measure(Guard(starlette, auth, gate), starlette.routes, metrics)


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


async def until_disconnect(request: Request, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None (and `work` cancelled) if the caller disconnects first."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        return task.result() if task.done() else None
    finally:
        for pending in (task, watcher):
            pending.cancel()
        await asyncio.gather(task, watcher, return_exceptions=True)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: SIGTERM belongs to the gRPC server's drain."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OpenAIServer:
    """The HTTP listener's lifecycle: bound and serving in start(), closed in stop()."""

    def __init__(
        self,
        settings: RolloutSettings,
        model: ServedModel,
        generation: Generation,
        gate: CallGate,
        metrics: HttpMetrics | None = None,
    ) -> None:
        token = settings.resolved_token()
        self.settings = settings
        self.front = OpenAIFront(settings, model, generation)
        auth = BearerAuth(token) if token is not None else None
        self.app = self.front.app(auth, gate, metrics)
        self.port = 0
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    def _config(self) -> uvicorn.Config:
        s = self.settings
        tls: dict[str, Any] = {}
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            tls = {"ssl_certfile": str(s.tls_cert_file), "ssl_keyfile": str(s.tls_key_file)}
            if s.tls_client_ca_file is not None:
                tls |= {
                    "ssl_ca_certs": str(s.tls_client_ca_file),
                    "ssl_cert_reqs": ssl.CERT_REQUIRED,
                }
        return uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=int(STOP_TIMEOUT_S),
            **tls,
        )

    async def start(self) -> None:
        host = self.settings.openai_host or self.settings.host
        sock = socket.create_server(
            (host, self.settings.openai_port or 0),
            family=socket.AF_INET6 if ":" in host else socket.AF_INET,
            reuse_port=False,
        )
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._server = _EmbeddedServer(self._config())
        self._task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()  # a failed start raises here
            raise OSError(f"the OpenAI HTTP server on {host}:{self.port} did not start")
        log.info("OpenAI-compatible HTTP API on %s:%d", host, self.port, extra={"port": self.port})

    async def stop(self) -> None:
        """Close the listener, let responses in flight finish (streams end on drain)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S + 5)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._server = self._task = None
