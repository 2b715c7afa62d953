"""A real pygcn VTP listener (``gcn.listen``), as telescopes and GCN users run it: saves every
VOEvent it receives as ``<sha1 of the IVORN>.xml`` in a directory. Run as a process:

    python tests/xmpp/pygcn_listener.py HOST PORT DIRECTORY
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

import gcn


def main() -> None:
    host, port, folder = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    folder.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO)

    def handler(payload: bytes, root: Any) -> None:
        name = hashlib.sha1(root.attrib["ivorn"].encode()).hexdigest()
        partial = folder / f"{name}.part"
        partial.write_bytes(payload)
        partial.rename(folder / f"{name}.xml")  # whole files only, for the test reading them

    gcn.listen(host=host, port=port, handler=handler, iamalive_timeout=60, max_reconnect_timeout=2)


if __name__ == "__main__":
    main()
