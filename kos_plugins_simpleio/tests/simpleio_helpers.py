"""Helpers of the simpleio tests: a private X server, what a person does to a window
(xdotool), what the X server can tell about it (xwininfo, the PRIMARY selection,
screenshots), and the processes a plugin started.

Every wait has a deadline (``wait_for``); every process started here is stopped by
the fixture that owns it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
import shutil
import signal
import subprocess
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kos_core.testing import KernelProcess, descendants_of, process_ended, wait_for

#: Every window the plugin opens is titled "simpleio window N".
TITLE = "simpleio window"
#: Debian packages that hold the X tools the tests drive windows with.
TOOL_PACKAGES = {
    "Xvfb": "xvfb",
    "xdotool": "xdotool",
    "xwininfo": "x11-utils",
    "xclip": "xclip",
    "import": "imagemagick",
}


def tool(name: str) -> str:
    """The path of an X tool, or an AssertionError naming the package that holds it."""
    path = shutil.which(name)
    if path is None:
        package = TOOL_PACKAGES.get(name, name)
        raise AssertionError(f"{name} is not installed (Debian package {package!r})")
    return path


# --------------------------------------------------------------------------- Xvfb


def display_free(number: int) -> bool:
    """True if nothing holds X display ``:number`` (no socket, no lock file)."""
    return not (
        Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists()
    )


class Xvfb:
    """A private virtual X server on the first free display number from ``first``."""

    def __init__(self, log_path: Path, first: int = 90, tries: int = 50) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.display = ""
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed by stop())
        for number in range(first, first + tries):
            if display_free(number) and self._start(number):
                return
        self.stop()
        raise RuntimeError(f"no free X display in :{first}..:{first + tries - 1}")

    def _start(self, number: int) -> bool:
        command = ["Xvfb", f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        socket_path = Path(f"/tmp/.X11-unix/X{number}")

        def up() -> bool:
            if process.poll() is not None:
                raise _XvfbExited
            return socket_path.exists()

        try:
            wait_for(up, 15.0, f"Xvfb :{number} to listen")
        except _XvfbExited:
            process.wait()
            return False  # lost a race for this display number: try the next one
        except TimeoutError:
            process.kill()
            process.wait()
            raise
        self.process = process
        self.display = f":{number}"
        return True

    def stop(self) -> None:
        """Stop the X server (and whatever it still runs in its session)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class _XvfbExited(Exception):
    pass


# --------------------------------------------------------------------------- the screen


@dataclass(frozen=True)
class Geometry:
    """Where a window is and how big (from ``xwininfo``)."""

    x: int
    y: int
    width: int
    height: int


class Screen:
    """One X display, as a person and an X client see it."""

    def __init__(self, display: str) -> None:
        self.display = display

    def run(self, *command: str, check: bool = True, timeout: float = 20.0) -> str:
        """Run an X tool on this display; return its stdout."""
        result = subprocess.run(
            [tool(command[0]), *command[1:]],
            env={**os.environ, "DISPLAY": self.display},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} failed with exit {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    # -- finding windows ------------------------------------------------------------

    def windows(self) -> set[str]:
        """The ids of the simpleio windows on the screen (mapped ones only)."""
        out = self.run("xdotool", "search", "--onlyvisible", "--name", TITLE, check=False)
        return set(out.split())

    def new_window(self, before: set[str], timeout: float = 10.0) -> str:
        """Wait for exactly one simpleio window that is not in ``before``; its id."""

        def appeared() -> str:
            new = self.windows() - before
            assert len(new) <= 1, f"more than one new window: {new}"
            return new.pop() if new else ""

        return wait_for(appeared, timeout, "a new simpleio window to be mapped")

    def wait_gone(self, wid: str, timeout: float = 10.0) -> None:
        """Wait until window ``wid`` is no longer on the screen."""
        wait_for(lambda: wid not in self.windows(), timeout, f"window {wid} to go away")

    def name(self, wid: str) -> str:
        """The window's title."""
        return self.run("xdotool", "getwindowname", wid).strip()

    def geometry(self, wid: str) -> Geometry:
        """The window's position and size."""
        out = self.run("xwininfo", "-id", wid)
        fields = {}
        for key in ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height"):
            match = re.search(rf"^\s*{key}:\s*(-?\d+)", out, re.MULTILINE)
            assert match, f"xwininfo gave no {key!r}:\n{out}"
            fields[key] = int(match.group(1))
        return Geometry(
            fields["Absolute upper-left X"],
            fields["Absolute upper-left Y"],
            fields["Width"],
            fields["Height"],
        )

    # -- what a person does ---------------------------------------------------------

    def type_line(self, wid: str, text: str) -> None:
        """Click the entry line, type ``text`` and press Enter, as real mouse and key
        events.

        There is no window manager to give the window the keyboard focus when a
        person clicks it, so it is given the focus directly (``windowfocus``). The
        click in the entry line (the bottom of the window) is what a person does
        after selecting text in the text area, which takes Tk's focus.
        """
        geometry = self.geometry(wid)
        self.run("xdotool", "windowraise", wid)  # no window manager: windows overlap at 0,0
        self.run("xdotool", "windowfocus", "--sync", wid)
        self.run(
            "xdotool",
            "mousemove", "--window", wid, str(geometry.width // 2),
            str(geometry.height - 10),
            "click", "1",
        )  # fmt: skip
        if text:
            self.run("xdotool", "type", "--window", wid, "--delay", "1", text)
        self.run("xdotool", "key", "--window", wid, "Return")

    def select_text(self, wid: str) -> None:
        """Drag the mouse over the text area, from its first character down past its
        last line: Tk selects that text and offers it as the PRIMARY selection.
        """
        geometry = self.geometry(wid)
        self.run("xdotool", "windowraise", wid)  # no window manager: windows overlap at 0,0
        # The text area fills the window above the one-line entry (about 25 px high).
        bottom = max(geometry.height - 40, 10)
        self.run(
            "xdotool",
            "mousemove", "--window", wid, "4", "4",
            "mousedown", "1",
            "mousemove", "--window", wid, str(geometry.width // 2), str(bottom),
            "mouseup", "1",
        )  # fmt: skip

    def primary_selection(self) -> str:
        """The PRIMARY selection, converted by its owner (``xclip -o``)."""
        return self.run("xclip", "-o", "-selection", "primary", check=False)

    def window_text(self, wid: str, expect: str, timeout: float = 10.0) -> str:
        """The text shown in window ``wid``, read back through the X selection; waits
        (with a deadline) until it contains ``expect`` and returns it.
        """

        def shown() -> str:
            self.select_text(wid)
            text = self.primary_selection()
            return text if expect in text else ""

        try:
            return wait_for(shown, timeout, f"{expect!r} in window {wid}")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; the window shows {self.primary_selection()!r}") from None

    def close_as_person(self, wid: str) -> None:
        """Ask the window to close as a window manager does when a person clicks its
        close button: a ``WM_PROTOCOLS``/``WM_DELETE_WINDOW`` client message.
        """
        send_wm_delete_window(self.display, int(wid))

    def screenshot(self, wid: str, path: Path) -> Path:
        """Save a picture of the window as a 24-bit RGB PNG."""
        self.run("import", "-window", wid, f"PNG24:{path}")
        return path


# --------------------------------------------------------------------------- Xlib


class _XClientMessageEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _XClientMessageEvent), ("pad", ctypes.c_long * 24)]


_CLIENT_MESSAGE = 33


def send_wm_delete_window(display: str, window: int) -> None:
    """Send ``WM_DELETE_WINDOW`` to ``window`` (xdotool 3.2016 cannot: its
    ``windowclose`` destroys the window and ``windowkill`` drops the client's connection).
    """
    name = ctypes.util.find_library("X11")
    assert name, "libX11 is not installed"
    xlib = ctypes.CDLL(name)
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XInternAtom.restype = ctypes.c_ulong
    xlib.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    xlib.XSendEvent.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_long,
        ctypes.POINTER(_XEvent),
    ]
    xlib.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = xlib.XOpenDisplay(display.encode())
    assert dpy, f"cannot open X display {display}"
    try:
        event = _XEvent()
        event.xclient.type = _CLIENT_MESSAGE
        event.xclient.window = window
        event.xclient.message_type = xlib.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = xlib.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        event.xclient.data[1] = 0  # CurrentTime
        assert xlib.XSendEvent(dpy, window, 0, 0, ctypes.byref(event)), "XSendEvent failed"
        xlib.XSync(dpy, 0)
    finally:
        xlib.XCloseDisplay(dpy)


# --------------------------------------------------------------------------- pictures


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG with the standard library:
    ``(width, height, rows)``, each row ``width * channels`` bytes.
    """
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
            depth, color, interlace = body[8], body[9], body[12]
            assert depth == 8 and color in (2, 6) and interlace == 0, (
                f"{path}: unsupported PNG: depth {depth}, colour {color}, interlace {interlace}"
            )
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + pred) & 0xFF
            else:
                assert kind == 0, f"{path}: bad PNG filter {kind}"
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def luminances(rows: Sequence[bytes], channels: int = 3) -> list[int]:
    """The brightness (0-255) of every pixel."""
    out = []
    for row in rows:
        for i in range(0, len(row), channels):
            r, g, b = row[i], row[i + 1], row[i + 2]
            out.append((299 * r + 587 * g + 114 * b) // 1000)
    return out


# --------------------------------------------------------------------------- processes


def live_descendants(pid: int) -> set[int]:
    """Every process below ``pid`` that has not ended (zombies left out)."""
    return {child for child in descendants_of(pid) if not process_ended(child)}


def kill_quietly(pids: set[int] | Sequence[int]) -> None:
    """SIGKILL what is left of ``pids``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- kernels


def window_child(kernel: KernelProcess, before: set[int]) -> int:
    """The one process the plugin started since ``before`` (its descendants then)."""
    plugin = kernel.plugin_pids["simpleio"]
    new = wait_for(lambda: live_descendants(plugin) - before, 10, "the window process")
    assert len(new) == 1, f"more than one new process under the plugin: {new}"
    return new.pop()


#: The ``start_simpleio`` fixture: a kernel with ``DISPLAY`` set to this (``None``:
#: unset), once its simpleio plugin runs (its pid in ``kernel.plugin_pids["simpleio"]``).
StartSimpleIO = Callable[[str | None], KernelProcess]


# --------------------------------------------------------------------------- calls


class Pending:
    """A blocking call running in a daemon thread, so a test can wait for it with a
    deadline and fail (instead of hanging) when it never returns.
    """

    def __init__(self, func: Callable[[], object], what: str) -> None:
        self.what = what
        self._done = threading.Event()
        self._result: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(func,), daemon=True)
        self._thread.start()

    def _run(self, func: Callable[[], object]) -> None:
        try:
            self._result = func()
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def done(self) -> bool:
        """True once the call has returned or raised."""
        return self._done.is_set()

    def result(self, timeout: float = 10.0) -> object:
        """The call's result (or its exception, raised here) within ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise AssertionError(f"{self.what} did not return within {timeout:g} s")
        if self._error is not None:
            raise self._error
        return self._result

    def error(self, timeout: float = 10.0) -> BaseException:
        """The exception the call raised within ``timeout`` seconds."""
        try:
            value = self.result(timeout)
        except AssertionError as exc:
            if not self.done():
                raise
            return exc
        except BaseException as exc:
            return exc
        raise AssertionError(f"{self.what} returned {value!r} instead of raising")
