"""A small async client for the gateway's REST API (used by the CLI, the demo and the benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import aiohttp

RATE_LIMIT_RETRIES = 20  # a 429 is retried after the gateway's Retry-After this many times before it is raised


class ApiError(RuntimeError):
    def __init__(self, status: int, body: Any, retry_after: float | None = None) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.body = body
        self.retry_after = retry_after


class Client:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        """``token``: an API key or access token; default $STREAMSCRIBE_API_KEY."""
        self.base = base_url.rstrip("/")
        token = token or os.environ.get("STREAMSCRIBE_API_KEY")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=600))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def _json(self, resp: aiohttp.ClientResponse) -> Any:
        text = await resp.text()
        try:
            body = json.loads(text) if text else None
        except json.JSONDecodeError:
            body = text
        if resp.status >= 400:
            retry = resp.headers.get("Retry-After")
            raise ApiError(resp.status, body, float(retry) if retry and retry.isdigit() else None)
        return body

    async def _call(self, method: str, path: str, *, fmt_json: bool = True, fields: dict[str, str] | None = None,
                    file: Path | None = None, **kwargs: Any) -> Any:
        """One request; a 429 is waited out as the gateway's Retry-After asks, up to ``RATE_LIMIT_RETRIES`` times.
        ``fields`` and ``file`` make a multipart form, built again (and the file opened again) for each try."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            with contextlib.ExitStack() as files:
                data = None
                if fields is not None or file is not None:
                    data = aiohttp.FormData()
                    for k, v in (fields or {}).items():
                        data.add_field(k, v)
                    if file is not None:
                        data.add_field("file", files.enter_context(open(file, "rb")), filename=file.name)
                async with self.session.request(method, f"{self.base}{path}", data=data, **kwargs) as resp:
                    try:
                        if fmt_json or resp.status >= 400:
                            body = await self._json(resp)
                            if fmt_json:
                                return body
                        return await resp.text()
                    except ApiError as exc:
                        if exc.status != 429 or attempt == RATE_LIMIT_RETRIES:
                            raise
                        wait = 1.0 if exc.retry_after is None else exc.retry_after
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def health(self, detailed: bool = False) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/health/detailed" if detailed else f"{self.base}/health") as resp:
            text = await resp.text()
            body: dict[str, Any] = json.loads(text) if text else {}
            return body

    async def submit(self, path: Path, **fields: str | None) -> dict[str, Any]:
        body: dict[str, Any] = await self._call("POST", "/v1/jobs", file=path,
                                                fields={k: v for k, v in fields.items() if v is not None})
        return body

    async def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._call("GET", f"/v1/jobs/{job_id}")
        return body

    async def jobs(self, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Every job (of every organization, for an admin) with ``status``, newest first, all pages."""
        out: list[dict[str, Any]] = []
        params = {"limit": str(limit), **({"status": status} if status else {})}
        while True:
            page: dict[str, Any] = await self._call("GET", "/v1/jobs", params=params)
            out += page["jobs"]
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    async def transcript(self, job_id: str, fmt: str = "json", revision: int | None = None) -> Any:
        params = {"format": fmt, **({"revision": str(revision)} if revision else {})}
        return await self._call("GET", f"/v1/jobs/{job_id}/transcript", params=params, fmt_json=fmt == "json")

    async def revisions(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._call("GET", f"/v1/jobs/{job_id}/revisions")
        return body

    async def rediarize(self, job_id: str, **settings: Any) -> dict[str, Any]:
        """POST /v1/jobs/{id}/rediarize with speaker settings (``speakers=2``, ``min_speakers``, ``max_speakers``,
        ``speaker_names``, ``backend``, ``diarize``, ``revision``); None values are left out."""
        body = {k: v for k, v in settings.items() if v is not None}
        result: dict[str, Any] = await self._call("POST", f"/v1/jobs/{job_id}/rediarize", json=body)
        return result

    async def wait_revision(self, job_id: str, revision: int, interval: float = 0.1,
                            timeout: float = 3600) -> dict[str, Any]:
        """Wait until ``revision`` of the job is completed or failed; its entry of ``revisions``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            revs = {r["revision"]: r for r in (await self.revisions(job_id))["revisions"]}
            entry = revs.get(revision)
            if entry is not None and entry["status"] in ("completed", "failed"):
                return entry
            if loop.time() > deadline:
                raise TimeoutError(f"revision {revision} of job {job_id} not finished after {timeout} s")
            await asyncio.sleep(interval)

    async def wait(self, job_id: str, interval: float = 0.25, timeout: float = 3600,
                   on_progress: Any = None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            job = await self.job(job_id)
            if on_progress:
                on_progress(job)
            if job["status"] in ("completed", "failed"):
                return job
            if loop.time() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            await asyncio.sleep(interval)
