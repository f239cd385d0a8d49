"""The completion routes: protocol conversion over the library's entry point and the gates.

* ``POST /v1/completions``: OpenAI-compatible completions over a prompt the client wrote
  (``suffix`` makes it fill-in-the-middle in the model's own format, `repoctx.plan.fim_prompt`).
* ``POST /v1/code/completions``: `repoctx.pipeline.Completer`'s steps (candidates, plan,
  finish) over the client's snippets and the shared repositories' candidates.
* ``GET|POST /v1/code/context``: a shared repository's context for a cursor.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from repoctx.engines.base import EngineError, GenerationRequest, GenerationResult
from repoctx.foreground import busy
from repoctx.pipeline import context_to_json
from repoctx.plan import PROMPT_MARGIN, Candidates, Plan, PromptDoesNotFit, fim_prompt, merge_candidates
from repoctx.types import Snippet

from .bodies import CodeCompletionBody, CompletionBody, ContextBody
from .errors import ClientGone, ServiceError
from .gate import Job, run_on_gate, watch_disconnect
from .screening import cursor_fields, screen_snippets
from .security import ANONYMOUS
from .state import EngineSlot, Service, SharedRepo


def tenant_of(request: Request) -> str:
    return request.scope.get("repoctx.tenant", ANONYMOUS)


def finish_reason(reason: str) -> str:
    """OpenAI's finish reasons: "stop" or "length" (a cancelled generation reached no client)."""
    return reason if reason in ("stop", "length") else "stop"


def snippet_json(snippet: Snippet, tokenizer: Any) -> dict[str, Any]:
    return {"path": snippet.path, "start_line": snippet.start_line, "end_line": snippet.end_line,
            "source": snippet.source, "tokens": tokenizer.count(snippet.text), "reason": snippet.reason}


# ----------------------------------------------------------------------------------- running a generation

def generate_in_foreground(slot: EngineSlot, generation: GenerationRequest, cancel, on_text) -> GenerationResult:
    """The slot's engine at work, marked as a completion: background work in this process
    (vectors, indexing, git lookups of the shared repositories) waits for it (`repoctx.foreground`)."""
    with busy():
        return slot.engine.generate(generation, cancel, on_text)


async def run_request(service: Service, request: Request, slot: EngineSlot, tenant: str,
                      generation: GenerationRequest) -> GenerationResult:
    """The engine's answer through the slot's gate; the client leaving cancels it."""
    job = Job()
    watcher = asyncio.ensure_future(watch_disconnect(request.receive, job))
    try:
        result = await run_on_gate(slot.gate, job, lambda: generate_in_foreground(slot, generation, job.cancel, None),
                                   service.record(slot, tenant))
    finally:
        watcher.cancel()
    if job.gone.is_set():
        raise ClientGone()
    return result


async def run_cached(service: Service, request: Request, slot: EngineSlot, tenant: str,
                     generation: GenerationRequest, key: tuple) -> tuple[GenerationResult, bool]:
    """The tenant's cached result for `key` when the generation is greedy (temperature 0),
    else `run_request`'s, cached when it stopped or hit its length; and whether it was cached."""
    cached = service.cache.get(tenant, key) if generation.temperature == 0 else None
    if cached is not None:
        service.metrics.cache_hits.inc()
        return cached, True
    result = await run_request(service, request, slot, tenant, generation)
    if generation.temperature == 0 and result.finish_reason in ("stop", "length"):
        service.cache.put(tenant, key, result)
    return result, False


async def stream_completion(service: Service, request: Request, slot: EngineSlot, tenant: str,
                            generation: GenerationRequest, ident: str, created: int, include_usage: bool) -> Response:
    """Server-sent events of the generation's text as it comes; the slot is taken before the 200."""
    unavailable = getattr(slot.engine, "unavailable", None)  # a pool whose upstreams are all down
    if unavailable is not None and (refusal := unavailable()) is not None:
        raise refusal  # a 503 before the stream's 200
    job = Job()
    watcher = asyncio.ensure_future(watch_disconnect(request.receive, job))
    try:
        await slot.gate.acquire(job)  # before the 200 goes out, so a full queue is still a 503
    except BaseException:
        watcher.cancel()
        raise
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()

    def on_text(text: str) -> None:
        loop.call_soon_threadsafe(pieces.put_nowait, text)

    future = slot.gate.start(job, lambda: generate_in_foreground(slot, generation, job.cancel, on_text),
                             service.record(slot, tenant))
    future.add_done_callback(lambda _: pieces.put_nowait(None))

    def chunk(text: str, finish: str | None) -> str:
        data = {"id": ident, "object": "text_completion", "created": created, "model": slot.model_id,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events():
        try:
            while True:
                text = await pieces.get()
                if text is None:
                    break
                yield chunk(text, None)
            error = future.exception()
            if error is not None:
                message = f"engine error: {error}" if isinstance(error, EngineError) else "internal error"
                yield f"data: {json.dumps({'error': {'message': message, 'type': 'engine_error'}})}\n\n"
            else:
                result: GenerationResult = future.result()
                yield chunk("", finish_reason(result.finish_reason))
                if include_usage:
                    usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                             "total_tokens": result.prompt_tokens + result.completion_tokens}
                    data = {"id": ident, "object": "text_completion", "created": created, "model": slot.model_id,
                            "choices": [], "usage": usage}
                    yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            if not future.done():
                job.cancel.cancel()  # the client went away mid-stream: stop the engine
            watcher.cancel()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# ----------------------------------------------------------------------------------- planning a code completion

def plan_code_completion(service: Service, body: CodeCompletionBody, snippets: list[Snippet], repos: list[SharedRepo],
                         tenant: str, chosen: EngineSlot | None, draft: str = "") -> tuple[EngineSlot, Plan, dict[str, float]]:
    """The slot and the library's plan for a code completion (in a worker thread): the client's
    snippets and the shared repositories' candidates, assembled in the slot's tokens. `draft`:
    a first completion, joined to the repositories' retrieval query (`retrieval.draft_query`)
    and assembled afresh (the tenant's keystroke-stable layout would keep the first context)."""
    slot = chosen or service.slots["default"]
    max_tokens = service.max_tokens(body.max_tokens, slot)
    if chosen is None and "long" in service.slots:
        tokenizer = slot.engine.tokenizer
        wanted = (tokenizer.count(body.prefix) + tokenizer.count(body.suffix)
                  + sum(tokenizer.count(s.text) for s in snippets) + max_tokens)
        slot = service.route(wanted, body.long_context)
        max_tokens = service.max_tokens(body.max_tokens, slot)
    completer = slot.completer
    started = time.perf_counter()
    cursor = body.cursor()
    window = completer.window(cursor, max_tokens)
    parts: list[Candidates] = []
    if snippets:
        ranked: dict[str, list[Snippet]] = {}
        for snippet in snippets:
            ranked.setdefault(snippet.source, []).append(snippet)
        parts.append(Candidates(cursor, window, ranked, started=started))
    # One origin keeps its own paths, as an editor in that repository would see them; merged
    # origins are told apart by the repository's name in front of each of its paths.
    merged = len(repos) + bool(snippets) > 1
    parts.extend(repo.candidates(cursor, window, prefix_paths=merged, draft=draft) for repo in repos)
    candidates = merge_candidates(cursor, window, parts or [Candidates(cursor, window, {})], started=started)
    timings = {k: v for k, v in candidates.timings_ms.items() if k.startswith("retrieve.")}
    timings["retrieve"] = (time.perf_counter() - started) * 1000
    repo_name = body.repo_name
    if not repo_name and len(repos) == 1 and not merged:
        repo_name = repos[0].repo_name
    key = (tenant, slot.name, tuple(sorted(r.name for r in repos)), body.path)
    assembling = time.perf_counter()
    try:
        plan = completer.plan(candidates, budget=body.budget, max_tokens=max_tokens,
                              temperature=body.temperature, repo_name=repo_name,
                              layouts=service.layouts, layout_key=key, fresh=bool(draft))
    except PromptDoesNotFit as exc:
        raise ServiceError(422, f"{exc} beside max_tokens {max_tokens} in the {slot.window}-token window",
                           param="max_tokens") from None
    timings["assemble"] = (time.perf_counter() - assembling) * 1000
    return slot, plan, timings


# ----------------------------------------------------------------------------------- the routes

def add_routes(app: FastAPI, service: Service) -> None:
    """The completion and context routes, on `app`."""

    @app.post("/v1/completions")
    async def completions(body: CompletionBody, request: Request) -> Response:
        tenant = tenant_of(request)
        chosen = service.slot_for_model(body.model)
        slot = chosen or service.slots["default"]
        max_tokens = service.max_tokens(body.max_tokens, slot)
        # The prompt is the cursor's file (or all of a prompt): refused whole when the policy says so.
        path = await asyncio.to_thread(cursor_fields, service.policy, body.path,
                                       {"prompt": body.prompt_text, "suffix": body.suffix})

        def build(slot: EngineSlot) -> tuple[str, list[str], int]:
            if body.suffix is None:
                prompt, stops = body.prompt_text, body.stops
            else:  # fill-in-the-middle in the model's own format
                prompt, stops = fim_prompt(slot.template, path, body.prompt_text, body.suffix, body.language, body.stops)
            return prompt, stops, slot.engine.tokenizer.count(prompt)

        prompt, stops, tokens = await asyncio.to_thread(build, slot)
        if chosen is None:
            routed = service.route(tokens + max_tokens)
            if routed is not slot:
                slot = routed
                prompt, stops, tokens = await asyncio.to_thread(build, slot)
        if tokens == 0:
            raise ServiceError(422, "prompt: the prompt is empty", param="prompt")
        if tokens + max_tokens + PROMPT_MARGIN > slot.window:
            raise ServiceError(400, f"this request needs {tokens + max_tokens} tokens ({tokens} in the prompt, "
                                    f"{max_tokens} to generate); {slot.model_id}'s window is {slot.window}",
                               code="context_length_exceeded", param="prompt")
        temperature = body.temperature if body.temperature is not None else slot.config.engine.temperature
        generation = GenerationRequest(prompt=prompt, max_tokens=max_tokens, stop=stops, temperature=temperature,
                                       timeout_s=slot.config.engine.timeout_s)
        ident = f"cmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return await stream_completion(service, request, slot, tenant, generation, ident, created, include_usage)

        key = ("openai", slot.name, prompt, max_tokens, tuple(stops))
        result, cached = await run_cached(service, request, slot, tenant, generation, key)
        return JSONResponse(
            {"id": ident, "object": "text_completion", "created": created, "model": slot.model_id,
             "choices": [{"text": result.text, "index": 0, "logprobs": None,
                          "finish_reason": finish_reason(result.finish_reason)}],
             "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                       "total_tokens": result.prompt_tokens + result.completion_tokens}},
            headers={"X-Repoctx-Cache": "hit" if cached else "miss"})

    @app.post("/v1/code/completions")
    async def code_completions(body: CodeCompletionBody, request: Request) -> JSONResponse:
        started = time.perf_counter()
        tenant = tenant_of(request)
        limits = service.settings.limits
        if len(body.snippets) > limits.max_snippets:
            raise ServiceError(422, f"snippets: at most {limits.max_snippets} (got {len(body.snippets)})", param="snippets")
        chosen = service.slot_for_model(body.model)
        repos = service.repos_for(body.repos, tenant)

        def screen() -> tuple[CodeCompletionBody, list[Snippet], list[str]]:
            # The cursor's file is refused whole; a snippet the policy refuses is left out, with a note.
            path = cursor_fields(service.policy, body.path, {"prefix": body.prefix, "suffix": body.suffix})
            kept, left_out = screen_snippets(service.policy, [snippet.snippet() for snippet in body.snippets])
            return body.model_copy(update={"path": path}), kept, left_out

        body, snippets, left_out = await asyncio.to_thread(screen)
        slot, plan, timings = await asyncio.to_thread(plan_code_completion, service, body, snippets, repos, tenant, chosen)
        key = ("code", slot.name, plan.prompt, plan.request.max_tokens, plan.multiline)
        result, cached = await run_cached(service, request, slot, tenant, plan.request, key)
        text = slot.completer.finish(plan, result.text)
        if repos and text.strip() and slot.completer.config.retrieval.draft_query:
            # RepoCoder's second iteration: that completion joins the repositories' query.
            timings["draft"] = (time.perf_counter() - started) * 1000
            slot, second, _ = await asyncio.to_thread(plan_code_completion, service, body, snippets, repos, tenant,
                                                      slot, text)
            if second.prompt != plan.prompt:
                plan = second
                key = ("code", slot.name, plan.prompt, plan.request.max_tokens, plan.multiline)
                result, cached = await run_cached(service, request, slot, tenant, plan.request, key)
                text = slot.completer.finish(plan, result.text)
        tokenizer = slot.engine.tokenizer
        timings.update({f"engine.{k}": v for k, v in (result.timings_ms or {}).items()})
        timings["total"] = (time.perf_counter() - started) * 1000
        return JSONResponse({
            "completion": text,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "context_used": [snippet_json(s, tokenizer) for s in plan.context.snippets],
            "context_tokens": plan.context.used_tokens,
            "context_budget": plan.context.budget,
            "finish_reason": result.finish_reason,
            "multiline": plan.multiline,
            "model": slot.model_id,
            "context_window": slot.window,
            "cached": cached,
            "notes": left_out + plan.context.notes,
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        })

    async def context_answer(body: ContextBody, request: Request) -> JSONResponse:
        tenant = tenant_of(request)
        (repo,) = service.repos_for([body.repo], tenant)
        slot = service.slots["default"]
        tokenizer = slot.engine.tokenizer

        def work() -> dict[str, Any]:
            path = cursor_fields(service.policy, body.path, {"prefix": body.prefix, "suffix": body.suffix,
                                                             "text": body.text})
            cursor = replace(body.cursor(), path=path)
            context = repo.context_for(cursor, slot.completer, budget=body.budget, layouts=service.layouts,
                                       layout_key=("context", tenant, repo.name, path))
            return {"repo": repo.name, **context_to_json(context, tokenizer)}

        return JSONResponse(await asyncio.to_thread(work))

    @app.post("/v1/code/context")
    async def context_post(body: ContextBody, request: Request) -> JSONResponse:
        return await context_answer(body, request)

    @app.get("/v1/code/context")
    async def context_get(request: Request) -> JSONResponse:
        try:
            body = ContextBody.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("query", *e.get("loc", ()))} for e in exc.errors()]) from None
        return await context_answer(body, request)

