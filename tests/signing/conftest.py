"""Keys shared by the signature tests (made once per session with the real ``gpg``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.signing.keys import Home, home

if shutil.which("gpg") is None:  # pragma: no cover - Debian's gpg is a test dependency
    pytest.skip("gpg (GnuPG) is not installed", allow_module_level=True)


@dataclass(frozen=True)
class Keys:
    author: Home  #: an independent VOEvent author (its own GNUPGHOME)
    author_fpr: str
    stranger: Home  #: somebody whose key burstbus never imported
    stranger_fpr: str
    centre: Home  #: where the centre's key was made (its secret key is exported to the keyring)
    centre_fpr: str
    outsider: Home  #: a telescope that imported only the centre's public key
    root: Path

    def keyring(self, path: Path, *, centre_secret: bool = True) -> Path:
        """A burstbus keyring directory: the author's public key, and the centre's key."""
        ring = home(path)
        ring.import_(self.author.export(self.author_fpr))
        ring.import_(self.centre.export_secret(self.centre_fpr) if centre_secret else self.centre.export(self.centre_fpr))
        return ring.path


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    root = tmp_path_factory.mktemp("gpg")
    author, stranger, centre, outsider = (home(root / name) for name in ("author", "stranger", "centre", "outsider"))
    made = Keys(
        author=author, author_fpr=author.new_key("GRB author <author@observatory.example>"),
        stranger=stranger, stranger_fpr=stranger.new_key("Stranger <x@elsewhere.example>"),
        centre=centre, centre_fpr=centre.new_key("FSC burstbus <burstbus@fsc.example>"),
        outsider=outsider, root=root,
    )
    outsider.import_(centre.export(made.centre_fpr))
    try:
        yield made
    finally:
        for each in (author, stranger, centre, outsider):
            each.kill_agents()
