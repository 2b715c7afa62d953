"""Signed VOEvents: Comet's documented OpenPGP scheme, verified on ingest and applied to our own packets.

The scheme (Comet's "OpenPGP Signatures, Comet and VOEvents", J. Swinbank 2012): a detached,
ASCII-armoured OpenPGP signature over the bytes of the root element, from its opening ``<``
to the closing ``>`` of its end tag, appended after the root as an XML comment in which every
``-----`` is written ``=====`` (``--`` is not allowed inside a comment). Nothing is ever
re-serialised: the signed range is a slice of the exact bytes received, and signing inserts
the comment after the root of the exact bytes rendered.

* :mod:`.armour` — pure: find the signed range and the signature comment, build a signed packet.
* :mod:`.policy` — pure: the ``[signatures]`` section, its checks, and the trust policy
  (which packets must carry a valid signature from which keys), in the shape of
  :mod:`burstbus.authority`.
* :mod:`.gpg` — I/O: GnuPG (Debian's ``gpg`` through ``python-gnupg``) on its own keyring
  directory, in batch mode; called from the ingest's thread pool, never on the event loop.
"""
