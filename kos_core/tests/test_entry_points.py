"""kos's own reader of entry points (kos_core._entry_points), on distributions written
into temporary site folders put on ``sys.path``; checked against
``importlib.metadata`` where both apply.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from kos_core._entry_points import entry_points

GROUP = "kos.toygroup"


def write_dist(
    site: Path,
    folder: str,
    entry_points_text: str | None,
    metadata: tuple[str, str] | None = ("PKG-INFO", "Name: toy-dist\nVersion: 2.0\n"),
) -> Path:
    info = site / folder
    info.mkdir(parents=True)
    if metadata is not None:
        (info / metadata[0]).write_text(metadata[1] + "\nThe body, not a header: x\n")
    if entry_points_text is not None:
        (info / "entry_points.txt").write_text(entry_points_text)
    return info


@pytest.fixture
def sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two site folders, the first before the second on ``sys.path``."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    return first, second


def test_sections_comments_names_and_values(sites: tuple[Path, Path]) -> None:
    first, _ = sites
    write_dist(
        first,
        "toy_one-1.0.dist-info",
        f"# a comment\n[other.group]\nskipped = nothing\n\n[{GROUP}]\n"
        "# another comment\nalpha = os.path:join\nbeta=json  [extra]\n",
        ("METADATA", "Metadata-Version: 2.1\nName: Toy-One\nVersion: 1.0\n"),
    )
    found = entry_points(GROUP)
    assert [(ep.name, ep.value, ep.group) for ep in found] == [
        ("alpha", "os.path:join", GROUP),
        ("beta", "json  [extra]", GROUP),
    ]
    alpha, beta = found
    import json
    import os.path

    assert alpha.load() is os.path.join
    assert alpha.module == "os.path"
    assert beta.load() is json
    assert alpha.distribution() == ("Toy-One", "1.0")
    assert [ep.name for ep in entry_points(GROUP, "beta")] == ["beta"]
    assert entry_points(GROUP, "gamma") == []
    # importlib.metadata sees the same entry points
    assert sorted(ep.name for ep in importlib.metadata.entry_points(group=GROUP)) == [
        "alpha",
        "beta",
    ]


def test_the_first_distribution_of_a_name_along_sys_path_wins(
    sites: tuple[Path, Path],
) -> None:
    first, second = sites
    write_dist(first, "toy_dup-1.0.dist-info", f"[{GROUP}]\nmine = json\n")
    write_dist(second, "Toy.Dup-2.0.dist-info", f"[{GROUP}]\ntheirs = json\nmine = os\n")
    write_dist(second, "toy_other-1.0.dist-info", f"[{GROUP}]\nother = os\n")
    found = entry_points(GROUP)
    assert sorted((ep.name, ep.value) for ep in found) == [("mine", "json"), ("other", "os")]


def test_egg_info_folders_and_missing_metadata(sites: tuple[Path, Path]) -> None:
    first, _ = sites
    write_dist(first, "toy_egg.egg-info", f"[{GROUP}]\negg = json\n")
    write_dist(first, "toy_bare-1.0.dist-info", f"[{GROUP}]\nbare = json\n", metadata=None)
    write_dist(first, "toy_none-1.0.dist-info", None)  # no entry points at all
    (first / "toy_file.egg-info").write_text("Name: an egg-info that is a file\n")
    found = {ep.name: ep for ep in entry_points(GROUP)}
    assert set(found) == {"egg", "bare"}
    assert found["egg"].distribution() == ("toy-dist", "2.0")  # from PKG-INFO
    assert found["bare"].distribution() == ("?", "?")


def test_what_is_not_a_folder_on_sys_path_is_skipped(
    sites: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = sites
    archive = tmp_path / "archive.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip archive
    monkeypatch.setattr(sys, "path", [str(archive), str(tmp_path / "gone"), *sys.path])
    write_dist(first, "toy_seen-1.0.dist-info", f"[{GROUP}]\nseen = json\n")
    assert [ep.name for ep in entry_points(GROUP)] == ["seen"]
