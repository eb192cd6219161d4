"""The archive: a link's record exported to a signed bundle (`export.py`, with the call
recordings of `recordings.py`), its offline verifier (`bundle.py`: the container and manifest in
`manifest.py`, strict JSON in `strict.py`, the chains in `chains.py`, the translation workflow in
`workflow.py`), and the transcripts for people (`transcript.py`, `pdf.py`, calls shown by
`calls.py`); docs/archive.md is the format, and it is normative.

`ArchiveError` lives here, below every module of the package, so that each check can raise it."""

from hotline.errors import RemoteError

__all__ = ["ArchiveError"]


class ArchiveError(RemoteError):
    """A bundle that does not verify: the message says where and what."""
