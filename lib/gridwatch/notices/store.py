"""Keeping the notifier's active notices across app restarts.

AppDaemon 4.5.13 terminates every app when its HA connection drops and
creates new app objects when it returns, and HA forgets persistent
notifications when it restarts: without a copy outside the app object the
notifier could not re-raise what was active. The copy is a small JSON file,
written atomically (temp file + rename) so a crash never leaves half a file.

The functions are blocking; the app calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from gridwatch.notices.client import Notice, NoticeError, parse_notice_event

_LOGGER = logging.getLogger(__name__)

_FORMAT_VERSION = 1


def save_notices(path: Path, notices: Iterable[Notice]) -> None:
    """Write the active notices to ``path`` atomically.

    Args:
        path: the JSON file (its directory must exist).
        notices: the active notices.

    Raises:
        OSError: the file could not be written.
    """
    body = {"version": _FORMAT_VERSION, "notices": [n.to_event_data() for n in notices]}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(body, handle, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_notices(path: Path, logger: logging.Logger | None = None) -> list[Notice]:
    """Read notices saved by :func:`save_notices`.

    A missing file is an empty list; a corrupt file or entry is logged and
    skipped (the notifier must start even if its file is damaged).

    Args:
        path: the JSON file.
        logger: the app's logger (what was skipped is a warning there).

    Returns:
        The notices that could be read.
    """
    log = logger or _LOGGER
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        log.warning("notice store %s unreadable, starting empty: %s", path, err)
        return []
    entries = body.get("notices", []) if isinstance(body, dict) else []
    notices: list[Notice] = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            request = parse_notice_event(entry if isinstance(entry, dict) else {})
        except NoticeError as err:
            log.warning("notice store %s: skipping bad entry: %s", path, err)
            continue
        if request.notice is not None:
            notices.append(request.notice)
    return notices
