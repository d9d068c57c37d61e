"""Following a log file across its rotation loses no line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kos_core._kernel import logs


def test_a_line_written_just_before_the_rotation_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "plugin.log"
    path.write_text("old\n")
    lines = logs.follow_file(path, interval=0.01)
    real_stat = os.stat
    rotated: list[bool] = []

    def stat_racing_a_writer(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        # Between the follower's last read of the old file and its check for a rotation,
        # the writer appends a line and rotates: the worst moment for the follower.
        if Path(target) == path and not rotated:
            rotated.append(True)
            with path.open("a") as old:
                old.write("last of the old file\n")
            path.rename(tmp_path / "plugin.log.1")
            path.write_text("first of the new file\n")
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(logs.os, "stat", stat_racing_a_writer)
    assert next(lines) == "last of the old file"
    assert next(lines) == "first of the new file"
    lines.close()
