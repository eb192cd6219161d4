"""The archive: a link's record exported to a signed bundle (`export.py`, with the call
recordings of `recordings.py`), its offline verifier (`bundle.py`), and the transcripts for
people (`transcript.py`, `pdf.py`, calls shown by `calls.py`); docs/archive.md is the format.

`ArchiveError` lives here, below every module of the package, so that each check can raise it."""

from hotline.errors import RemoteError

__all__ = ["ArchiveError"]


class ArchiveError(RemoteError):
    """A bundle that does not verify: the message says where and what."""
