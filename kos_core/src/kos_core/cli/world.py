"""``kos world``: the TLS material of a world of kernels.

``kos world ca init`` makes the world's certificate authority (``ca.pem``,
``ca-key.pem``); ``kos world ca issue KERNEL`` signs a certificate for one kernel
(``KERNEL.pem``, ``KERNEL-key.pem``). Both write into ``--dir``, by default
``<config dir>/world/``, where ``kos run --world`` looks. Keys are written ``0600``
in a ``0700`` directory, and nothing existing is overwritten.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from kos_core.cli.common import PathType
from kos_core.cli.errors import HintingGroup, reports_errors
from kos_core.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

#: how long a world's authority and the certificates it issues stay valid (days)
WORLD_DAYS = 3650


def tls_dir(given: Path | None) -> Path:
    """Where a world's TLS material lives: ``given``, else ``<config dir>/world``."""
    if given is not None:
        return given
    from kos_core._kernel.setup_files import default_config_dir

    return default_config_dir() / "world"


dir_option = click.option(
    "--dir",
    "directory",
    type=PathType(file_okay=False),
    metavar="DIR",
    help="Where the world's TLS files are (default: <config dir>/world).",
)


@click.group(cls=HintingGroup)
def world() -> None:
    """The world: kernels on many hosts sharing one namespace."""


@world.group(cls=HintingGroup)
def ca() -> None:
    """The world's certificate authority and the certificates it issues."""


@ca.command()
@dir_option
@reports_errors
def init(directory: Path | None) -> None:
    """Make the world's certificate authority: DIR/ca.pem and DIR/ca-key.pem.

    Copy ca.pem (not the key) to every host of the world; keep ca-key.pem where
    you issue kernel certificates.
    """
    from kos_core._net import tls

    where = _private_dir(tls_dir(directory))
    _refuse_existing(where / "ca-key.pem", where / "ca.pem")
    authority = tls.new_authority("kos world")
    _write_new(where / "ca-key.pem", authority.key_pem)
    _write_new(where / "ca.pem", authority.cert_pem, public=True)
    click.echo(f"{where / 'ca.pem'} (sha256 {tls.fingerprint(authority.cert_pem)})")


@ca.command()
@dir_option
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help="An address or DNS name the kernel is reached at (repeat; default: the kernel name).",
)
@click.argument("kernel")
@reports_errors
def issue(directory: Path | None, hosts: tuple[str, ...], kernel: str) -> None:
    """Sign a certificate for KERNEL: DIR/KERNEL.pem and DIR/KERNEL-key.pem."""
    import datetime

    from kos_core._net import tls
    from kos_core._os import paths

    paths.check_name(kernel, "kernel")
    where = tls_dir(directory)
    try:
        authority = tls.Authority(
            (where / "ca.pem").read_text(), (where / "ca-key.pem").read_text()
        )
    except FileNotFoundError as exc:
        raise UsageError(
            f"no world authority in {where} ({exc.filename} is missing); make one with:"
            f" kos world ca init --dir {where}"
        ) from None
    _refuse_existing(where / f"{kernel}-key.pem", where / f"{kernel}.pem")
    issued = authority.issue(kernel, list(hosts), datetime.timedelta(days=WORLD_DAYS))
    _write_new(where / f"{kernel}-key.pem", issued.key_pem)
    _write_new(where / f"{kernel}.pem", issued.cert_pem, public=True)
    click.echo(str(where / f"{kernel}.pem"))


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if os.path.lexists(path):
            raise UsageError(f"{path} already exists; remove it first to replace it")


def _write_new(path: Path, text: str, *, public: bool = False) -> None:
    mode = 0o644 if public else 0o600  # certificates are public; keys are not
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise UsageError(f"{path} already exists; remove it first to replace it") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
