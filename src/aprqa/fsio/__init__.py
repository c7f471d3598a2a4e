"""Every file aprqa writes and every input it opens goes through this module.

Outputs (``atomic_output``): the destination is locked (``fcntl.flock`` on a hidden sibling
``.NAME.aprqa-lock``, non-blocking: a second writer gets ``OutputLockedError`` at once), the
data is written to a hidden temporary sibling, fsynced, and renamed over the final name; a
directory (an HF model dir) is built the same way and swapped in as a whole. A killed or
failing writer therefore leaves the old output or none under the final name, never a part.
New files get ``0666 & ~umask`` (0644 under the usual umask); a replaced file keeps its mode.

Inputs (``open_regular``, ``read_bounded``, ``read_json``): only regular files are opened
(a FIFO, device or directory is refused before anything can block on it), and side files
(config.json, tokenizer.json, playbooks, evidence) are read up to a size cap that the error
states. Every ``OSError`` here becomes a typed ``InputError`` / ``OutputError``.
"""

from .inputs import (
                     CAP_CONFIG,
                     CAP_EVIDENCE,
                     CAP_INDEX,
                     CAP_PLAYBOOK,
                     CAP_TOKENIZER,
                     MiB,
                     open_regular,
                     parse_json,
                     read_bounded,
                     read_json,
)
from .outputs import (
                     DestinationLock,
                     LockedAppender,
                     atomic_output,
                     check_output,
                     new_file_mode,
                     refuse_input_as_output,
                     sweep_stale,
                     write_bytes_atomic,
                     write_text_atomic,
)

__all__ = ["CAP_CONFIG", "CAP_EVIDENCE", "CAP_INDEX", "CAP_PLAYBOOK", "CAP_TOKENIZER", "MiB", "open_regular",
           "parse_json", "read_bounded", "read_json", "DestinationLock", "LockedAppender", "atomic_output",
           "check_output", "new_file_mode", "refuse_input_as_output", "sweep_stale", "write_bytes_atomic", "write_text_atomic"]
