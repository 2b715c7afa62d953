-- Prosody for burstbus's Burst Advocate bot (docker/compose.yaml, docker/compose.cluster.yaml).
-- XMPP_DOMAIN (the compose file), XMPP_MUC and the PROSODY_* paths (the image's ENV, the
-- entrypoint) are read here as ENV_<NAME>, so `prosodyctl` run by `docker compose exec` reads
-- the same configuration. docs/deploy.md: what to change for production.

local domain = assert(ENV_XMPP_DOMAIN, "XMPP_DOMAIN is not set")
local certs = ENV_PROSODY_CERTS or "/etc/prosody/certs"

pidfile = (ENV_PROSODY_RUN or "/run/prosody") .. "/prosody.pid"
data_path = ENV_PROSODY_DATA or "/var/lib/prosody"
log = { { levels = { min = "info" }, to = "console" } }   -- stdout: `docker compose logs prosody`

-- Every interface of the container; the host publishes 5222 only.
interfaces = { "*" }
c2s_ports = { 5222 }
c2s_direct_tls_ports = { }
c2s_require_encryption = true
-- No federation and no web endpoints (enable them here if the centre wants them).
s2s_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }

authentication = "internal_hashed"
storage = "internal"
allow_registration = false   -- accounts: the entrypoint (the bot), `prosodyctl adduser` (people)

modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "carbons"; "smacks"; "mam";
	"offline"; "blocklist"; "private"; "pep"; "vcard_legacy"; "time"; "version"; "uptime";
}
modules_disabled = { "s2s"; "http"; "register"; }

-- The certificate the entrypoint makes (signed by its own CA, whose certificate burstbus trusts
-- through the xmpp-ca volume), or the centre's own, put in the prosody-certs volume.
ssl = { certificate = certs .. "/server.crt"; key = certs .. "/server.key"; }

VirtualHost (domain)

-- The Burst Advocates' rooms. Created by the first local user who joins (the bot creates the
-- rooms listed in burstbus.toml); non-anonymous by default, so the bot sees who asks.
Component (ENV_XMPP_MUC or ("conference." .. domain)) "muc"
	modules_enabled = { "muc_mam" }   -- the room archive the bot's outbox checks after a restart
	muc_room_locking = false
	restrict_room_creation = "local"
	muc_room_default_public_jids = true
	muc_room_default_persistent = true
	muc_room_default_public = false
