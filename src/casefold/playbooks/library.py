"""The set of loaded playbooks: bundled ones and a directory, reloaded when files change.

A file that fails validation is reported (file, line, reason) and never replaces the last good
version of its playbook: the previous version keeps running until the file is fixed. Bundled
playbooks are active only when named in the `bundled_playbooks` setting; a file of the same name
in the playbooks directory replaces the bundled one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from casefold.actions.registry import REGISTRY, ActionRegistry
from casefold.errors import ConfigError
from casefold.playbooks.loader import PlaybookError, Problem, load_playbook, parse_playbook
from casefold.playbooks.model import Playbook

log = logging.getLogger("casefold.playbooks")

PLAYBOOK_SUFFIXES = (".yml", ".yaml")


def bundled_playbooks(registry: ActionRegistry = REGISTRY) -> dict[str, Playbook]:
    out = {}
    for entry in resources.files("casefold.playbooks").joinpath("bundled").iterdir():
        if entry.name.endswith(PLAYBOOK_SUFFIXES):
            pb = parse_playbook(entry.read_text("utf-8"), f"bundled/{entry.name}", registry)
            out[pb.name] = pb
    return out


@dataclass
class _FileState:
    mtime_ns: int
    size: int


class PlaybookLibrary:
    def __init__(
        self,
        directory: Path | None,
        *,
        bundled: tuple[str, ...] = (),
        registry: ActionRegistry = REGISTRY,
    ) -> None:
        self.directory = directory
        self.registry = registry
        self._bundled_names = bundled
        self._lock = threading.Lock()
        self._from_files: dict[str, Playbook] = {}
        self._seen: dict[Path, _FileState] = {}
        self.errors: dict[str, list[Problem]] = {}
        self._bundled: dict[str, Playbook] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        available = bundled_playbooks(self.registry)
        unknown = [n for n in self._bundled_names if n not in available]
        if unknown:
            raise ConfigError(
                "bundled_playbooks",
                f"no bundled playbook named {unknown[0]!r}; "
                f"available: {', '.join(sorted(available))}",
            )
        self._bundled = {n: available[n] for n in self._bundled_names}
        self.reload()

    def reload(self) -> bool:
        """Re-read changed files; returns True if the set of playbooks changed."""
        if self.directory is None or not self.directory.is_dir():
            return False
        changed = False
        present = {
            p for p in self.directory.iterdir() if p.suffix in PLAYBOOK_SUFFIXES and p.is_file()
        }
        for path in sorted(present):
            st = path.stat()
            state = _FileState(st.st_mtime_ns, st.st_size)
            if self._seen.get(path) == state:
                continue
            self._seen[path] = state
            try:
                pb = load_playbook(path, self.registry)
            except PlaybookError as exc:
                self.errors[str(path)] = exc.problems
                kept = (
                    "keeping the last good version"
                    if path.stem in self._from_files
                    else "not loaded"
                )
                for problem in exc.problems:
                    log.error("playbook %s (%s)", problem, kept)
                continue
            self.errors.pop(str(path), None)
            with self._lock:
                if self._from_files.get(pb.name) != pb:
                    self._from_files[pb.name] = pb
                    changed = True
            log.info(
                "loaded playbook %s (version %s, %d actions)", pb.name, pb.version, len(pb.steps)
            )
        for path in list(self._seen):
            if path not in present:
                del self._seen[path]
                self.errors.pop(str(path), None)
                with self._lock:
                    if self._from_files.pop(path.stem, None) is not None:
                        changed = True
                        log.info("playbook %s removed", path.stem)
        return changed

    def all(self) -> list[Playbook]:
        with self._lock:
            merged = {**self._bundled, **self._from_files}
        return [pb for _, pb in sorted(merged.items()) if pb.enabled]

    def get(self, name: str) -> Playbook | None:
        with self._lock:
            return self._from_files.get(name) or self._bundled.get(name)

    def start_watching(self, interval: float = 1.0) -> None:
        if self.directory is None or self._thread is not None:
            return

        def watch() -> None:
            while not self._stop.wait(interval):
                try:
                    self.reload()
                except OSError as exc:  # the directory vanished for a moment: try again
                    log.warning("cannot scan %s: %s", self.directory, exc)

        self._thread = threading.Thread(target=watch, name="casefold-playbooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
