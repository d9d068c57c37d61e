"""The ``kos`` command group, and its kernel (``run``, ``plugin``) and names (``ls``,
``call``) commands; the other commands live in this package's sibling modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import click
from click import formatting

from kos_core import __version__
from kos_core.cli.common import (
    PathType,
    config_option,
    help_width,
    kernel_option,
    print_table,
    wait_options,
)
from kos_core.cli.errors import (
    HintingGroup,
    report_errors_of,
    reports_errors,
    run_command_line,
)
from kos_core.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["cli", "main"]

#: The commands that live in this package's sibling modules, imported only when one of
#: them is used: name -> (module, attribute, the first paragraph of its help, which
#: ``kos --help`` lists without importing the module; a test keeps it the command's own).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "call": ("call", "call", "Call METHOD of the service bound at SERVICE with ARGS."),
    "kp": ("kp", "kp", "Run Knowbot Programs (untrusted, confined, mobile) at a kernel."),
    "logs": (
        "logs",
        "logs",
        "Print the captured output (stdout and stderr) of plugin NAME (kp/ID: of a KP), or"
        " with --kernel-log the kernel's own log. Every line starts with its time; a marker"
        " line starts each kernel run. Works whether or not the kernel is running.",
    ),
    "plugins": (
        "status",
        "plugins",
        "List installed plugins, and their state if a kernel is running.",
    ),
    "reload": (
        "reload",
        "reload",
        "Read the setup files again and apply them to a running kernel.",
    ),
    "status": (
        "status",
        "status",
        "Show each plugin of a running kernel: state, pid, uptime, restarts, services,"
        " last exit; then its KPs, if it runs or ran any.",
    ),
    "watch": (
        "watch",
        "watch",
        "Print each service bound or unbound at or under PATH (default: everywhere), one"
        " line per event, until Ctrl-C.",
    ),
    "world": ("world", "world", "The world: kernels on many hosts sharing one namespace."),
}


class KosContext(click.Context):
    """The top-level context: it sizes help as click does, without importing shutil as
    click would (shutil imports the compression modules).
    """

    def make_formatter(self) -> click.HelpFormatter:
        width = self.terminal_width
        if width is None and formatting.FORCED_WIDTH is None:
            most = 80 if self.max_content_width is None else self.max_content_width
            width = help_width(most)
        return self.formatter_class(width=width, max_width=self.max_content_width)


class KosGroup(HintingGroup):
    """The top-level group: kos's own commands, those of :data:`LAZY_COMMANDS` imported
    on first use; installed plugins may add commands to it, which report errors as kos's
    own commands do.
    """

    context_class = KosContext
    _plugins_loaded = False
    #: while ``--help`` lists the commands: a lazy command not yet imported is listed
    #: from its summary in :data:`LAZY_COMMANDS`
    _listing = False

    def _lazy_command(self, name: str) -> click.Command:
        module, attribute, summary = LAZY_COMMANDS[name]
        if self._listing:
            return click.Command(name, help=summary)
        command: click.Command = getattr(
            importlib.import_module(f"kos_core.cli.{module}"), attribute
        )
        self.add_command(command, name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from kos_core._kernel.discovery import discover

        found = discover()
        for name, _ in found.manager.list_name_plugin():
            caller = found.manager.subset_hook_caller(
                "kos_register_commands",
                remove_plugins=[p for n, p in found.manager.list_name_plugin() if n != name],
            )
            before = dict(self.commands)
            try:
                caller(cli=self)
            except Exception as exc:  # a plugin's bug must not take the CLI down
                click.echo(f"kos: warning: plugin {name} could not add commands: {exc}", err=True)
            for command_name, command in self.commands.items():
                if before.get(command_name) is not command:
                    report_errors_of(command)  # its errors are one line, as kos's own

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted({*self.commands, *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            return self._lazy_command(cmd_name)
        if command is None:
            self._load_plugin_commands()
            command = super().get_command(ctx, cmd_name)
        return command


@click.group(cls=KosGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kos")
def cli() -> None:
    """Kos — a plugin host: a kernel that runs plugins as processes and a namespace
    where they bind services that clients call directly.

    \b
    Start a kernel:          kos run
    See plugins:             kos plugins
    See the namespace:       kos ls
    Call a service:          kos call bitbucket Set greeting hello
    """


@cli.command()
@kernel_option
@config_option
@click.option(
    "--listen",
    metavar="ADDR",
    help="Also listen on TCP HOST:PORT, with TLS (plugins serve TCP there too); or use"
    " unix:PATH instead of the default Unix socket.",
)
@click.option(
    "--world",
    metavar="URL",
    envvar="KOS_WORLD",
    help="Join the world kept in etcd at etcd://[USER@]HOST:PORT[,HOST:PORT...], or"
    " etcds://...?ca=FILE&cert=FILE&key=FILE for TLS (the password: $KOS_WORLD_PASSWORD);"
    " needs --listen. Default: $KOS_WORLD, else the kernel is alone.",
)
@click.option(
    "--tls-dir",
    type=PathType(file_okay=False),
    metavar="DIR",
    help="The world's TLS files (ca.pem, NAME.pem, NAME-key.pem; default: <config dir>/world).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much the kernel logs to stderr.",
)
@reports_errors
def run(
    *,
    kernel: str | None,
    config_dir: Path | None,
    listen: str | None,
    world: str | None,
    tls_dir: Path | None,
    log_level: str,
) -> None:
    """Run a kernel in the foreground and boot the configured plugins.

    Reads the plugin setup files (plugins, plugins.local, plugins.KERNEL) from the
    config directory; with none, every installed plugin boots. Ctrl-C or SIGTERM
    stops every plugin, then the kernel exits 0; SIGHUP (like kos reload) reads the
    setup files again and applies them.
    """
    import logging
    import threading

    from kos_core._kernel.core import KernelCore, install_stop_signals
    from kos_core._kernel.discovery import discover
    from kos_core._kernel.logs import open_kernel_log
    from kos_core._kernel.policy import Supervision
    from kos_core._kernel.reload import install_reload_signal
    from kos_core._kernel.setup_files import default_config_dir, load_setup, log_setup_read
    from kos_core._net import wire
    from kos_core._os import environment, paths

    environment.check()  # a bad number would stop every plugin as it starts
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s kos %(levelname)s: %(message)s"
    )
    name = paths.kernel_name(kernel)
    found = discover()
    for broken in found.broken:
        click.echo(
            f"kos: warning: plugin {broken.name} ({broken.distribution}) skipped: {broken.error}",
            err=True,
        )
    setup = load_setup(config_dir or default_config_dir(), name, found.known, found.declared)
    address = wire.Address.parse(listen) if listen else None
    joining = None
    if world:
        from kos_core._world.member import world_settings

        joining = world_settings(world, tls_dir or (config_dir or default_config_dir()) / "world")
    core = KernelCore(name, installed=found.plugins, setup=setup, listen=address, world=joining)
    stop = threading.Event()
    install_stop_signals(stop)
    install_reload_signal(core.reload_asked)
    kernel_log: list[logging.Handler] = []

    def before_boot() -> None:  # the kernel serves: its log is its own to write
        kernel_log.append(open_kernel_log(core.supervisor.state_dir, name, Supervision()))
        log_setup_read(setup)

    try:
        core.start(before_boot)
        booting = [r.name for r in core.records.values() if r.run_at_boot]
        plugins = ", ".join(booting) or "no plugins"
        click.echo(f"kos: kernel {name!r} running at {core.address}; booting {plugins}", err=True)
        core.run(stop)
    finally:
        core.shutdown()
        for handler in kernel_log:
            logging.getLogger("kos").info("kernel %s stopped", name)
            handler.close()
    click.echo(f"kos: kernel {name!r} stopped", err=True)


@cli.group(cls=HintingGroup)
def plugin() -> None:
    """Start, stop or restart a plugin of a running kernel."""


def _plugin_action(action: str) -> click.Command:
    @kernel_option
    @wait_options("the plugin runs with its services bound (stop: once it ended)")
    @click.argument("name")
    @reports_errors
    def command(kernel: str | None, wait: bool, timeout: float, name: str) -> None:
        from kos_core._client import connect
        from kos_core._client.plugin_control import describe

        with connect(kernel) as kos:
            row = getattr(kos, f"{action}_plugin")(name, wait=wait, timeout=timeout)
            click.echo(describe(row))

    command.__doc__ = {
        "start": "Start plugin NAME (also one that is stopped, exited or fatal).",
        "stop": "Stop plugin NAME and keep it stopped (it is not restarted).",
        "restart": "Stop plugin NAME, wait for it to end, and start it again.",
    }[action]
    return click.command(name=action)(command)


for _action in ("start", "stop", "restart"):
    plugin.add_command(_plugin_action(_action))


@cli.command()
@kernel_option
@click.argument("path", default="")
@reports_errors
def ls(kernel: str | None, path: str) -> None:
    """List a context of a running kernel's namespace (default: the top).

    Services show their interface, contexts end in '/', links show their target.
    """
    from kos_core._client import connect

    with connect(kernel) as kos:
        kind, _, _ = kos.kernel.Lookup(path)
        if kind != "context":
            raise UsageError(f"{path} is a service, not a context (try: kos call {path})")
        entries = kos.entries(path)
    rows = []
    for name, entry_kind, detail in entries:
        if entry_kind == "context":
            rows.append([name + "/", ""])
        elif entry_kind == "link":
            rows.append([name + "@", f"-> {detail}"])
        else:
            rows.append([name, detail])
    if rows:
        print_table(["NAME", "TYPE"], rows)


def main() -> None:
    """Entry point of the ``kos`` command."""
    run_command_line(cli)
