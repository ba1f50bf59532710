"""Worker processes that end with the process that started them.

A parent killed outright (kill -9) cannot stop its workers: an evaluation's pool workers waited forever,
under pid 1, for episodes that would never come, each with its submission worker and unpacked folder.
A daemon thread polls for the parent's death: `os.getppid()` changes when the parent dies (on every OS),
and unlike Linux's PR_SET_PDEATHSIG this does not fire when merely the thread that started the process ends.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

POLL_SECONDS = 0.5


def process_exists(pid: int) -> bool:
    """Whether process `pid` is running (POSIX: os.kill with signal 0 ends a process on Windows)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process is there (POSIX; see exit_with_parent)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, another user's
        return True
    return True


def exit_with_parent(cleanup: Callable[[], object] | None = None, owner: int | None = None,
                     poll: float = POLL_SECONDS) -> threading.Thread:
    """End this process within `poll` seconds of its parent's death, after `cleanup` (best effort: an error in
    it does not keep the process alive). `owner`: the process this one works for when that is not its parent
    (a forkserver's child works for the process that asked for it, while the forkserver outlives it); watched
    too, by pid, where it differs from the parent. Returns the watching daemon thread."""
    parent = os.getppid()
    other = owner if owner is not None and owner != parent and os.name == "posix" else None  # Windows: kill ends it

    def watch() -> None:
        while os.getppid() == parent and (other is None or process_exists(other)):
            time.sleep(poll)
        try:
            if cleanup is not None:
                cleanup()
        finally:
            os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
