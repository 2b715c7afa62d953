"""burstbus.bridges.xmpp: the XMPP bridge (slixmpp) — see docs/architecture.md."""
