"""Named test bases are built once, even when every process of a launch asks for one at the same moment."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path


def _slow_build(folder: Path) -> None:
    folder.mkdir(parents=True)
    with (folder.parent / "builds.log").open("a") as log:
        log.write("built\n")
    time.sleep(0.5)  # long enough for the other process to ask meanwhile
    (folder / "model_index.json").write_text("{}")


def _ask(cache: str, results: str) -> None:
    import os

    os.environ["ADAPTKIT_CACHE"] = cache
    from adaptkit.testing.bases import cached_build

    folder = cached_build("tiny-test", "abc", _slow_build)
    complete = (folder / "model_index.json").is_file()
    with open(results, "a") as handle:
        handle.write(f"{folder} {complete}\n")


def test_two_processes_asking_at_once_build_once_and_both_get_the_whole_folder(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    results = tmp_path / "results.txt"
    workers = [context.Process(target=_ask, args=(str(tmp_path / "cache"), str(results))) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    folder = tmp_path / "cache" / "testing" / "tiny-test" / "abc"
    assert results.read_text().splitlines() == [f"{folder} True"] * 2
    assert (folder.parent / "builds.log").read_text() == "built\n"  # the second waited and reused it
