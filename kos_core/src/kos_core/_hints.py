"""Hints that make an error say what to do: "did you mean", and why a name is missing."""

from __future__ import annotations

from collections.abc import Iterable


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``word`` (a likely typo of it), or ``None``."""
    import difflib  # only when there is something to suggest

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the choice most like ``word``, else ``""``."""
    match = close_match(word, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""


def plugin_not_running(name: str, state: str, last_exit: str) -> str:
    """Why a plugin's services are not bound, and the command that helps."""
    if state == "starting":
        return f"plugin {name} is starting (see: kos status; kos plugin start --wait {name})"
    if state in ("backoff", "fatal", "exited", "unhealthy"):
        why = f": {last_exit}" if last_exit else ""
        return f"plugin {name} is {state}{why} (see: kos logs {name}; kos plugin start {name})"
    return f"plugin {name} is {state} (kos plugin start {name})"
