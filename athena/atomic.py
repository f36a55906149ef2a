"""Writing a file whole or not at all: into a temporary file beside it, renamed over it.

`with replacing(path) as temporary:` hands the block a path in the same folder (so the
rename is atomic: `os.replace`); the block writes it; the rename happens only if the block
ends without error, and the temporary file is removed if it does not. A reader sees the old
file or the new one, never half of one, and two writers never interleave (the last rename
wins). Folders written the same way (a checkpoint, a trainer checkpoint) have their own
helpers: athena.checkpoints.folder, athena.heads.grpo.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside `target`, renamed over `target` when the block succeeds and
    removed when it raises. Its name (`.NAME.tmp-PID`) ends in no suffix a glob for `target`'s
    kind would match: a writer that goes by the suffix needs its format named."""
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
