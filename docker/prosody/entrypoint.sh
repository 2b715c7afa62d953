#!/bin/sh
# Prosody's start in docker/compose.yaml: a certificate for the domain (made once unless the
# prosody-certs volume already holds one; the CA's certificate goes to the xmpp-ca volume, which
# burstbus mounts read-only to trust it), the bot's account with the password from the
# xmpp_password secret (set again at every start, so the secret stays the truth), then Prosody
# in the foreground as the prosody user, logging to stdout. SIGTERM reaches Prosody (exec).
set -eu

: "${XMPP_DOMAIN:?set XMPP_DOMAIN: the server's domain, the bot is XMPP_BOT_USER@XMPP_DOMAIN}"
XMPP_MUC="${XMPP_MUC:-conference.$XMPP_DOMAIN}"
XMPP_BOT_USER="${XMPP_BOT_USER:-burstbus}"
XMPP_BOT_PASSWORD_FILE="${XMPP_BOT_PASSWORD_FILE:-/run/secrets/xmpp_password}"
PROSODY_CONFIG="${PROSODY_CONFIG:-/etc/prosody/prosody.cfg.lua}"
PROSODY_DATA="${PROSODY_DATA:-/var/lib/prosody}"
PROSODY_CERTS="${PROSODY_CERTS:-/etc/prosody/certs}"
PROSODY_CA_DIR="${PROSODY_CA_DIR:-/etc/prosody/ca}"
PROSODY_RUN="${PROSODY_RUN:-/run/prosody}"
PROSODY_USER="${PROSODY_USER:-prosody}"
export XMPP_DOMAIN XMPP_MUC PROSODY_DATA PROSODY_CERTS PROSODY_RUN   # read by prosody.cfg.lua

mkdir -p "$PROSODY_DATA" "$PROSODY_CERTS" "$PROSODY_CA_DIR" "$PROSODY_RUN"
chown -R "$PROSODY_USER:$PROSODY_USER" "$PROSODY_DATA" "$PROSODY_RUN"

if [ ! -s "$PROSODY_CERTS/server.crt" ] || [ ! -s "$PROSODY_CERTS/server.key" ]; then
	echo "entrypoint: making a CA ($PROSODY_CA_DIR/ca.crt) and a certificate for $XMPP_DOMAIN and $XMPP_MUC"
	work="$(mktemp -d)"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:%s\n' \
		"$XMPP_DOMAIN" "$XMPP_MUC" > "$work/server.ext"
	openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=burstbus XMPP CA for $XMPP_DOMAIN" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
	openssl req -newkey rsa:3072 -nodes -subj "/CN=$XMPP_DOMAIN" \
		-keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
	openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
		-days 825 -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null
	# The CA's key is not kept: a new certificate means a new CA (delete server.crt to get both).
	install -m 0644 "$work/ca.crt" "$PROSODY_CA_DIR/ca.crt"
	install -m 0644 "$work/server.crt" "$PROSODY_CERTS/server.crt"
	install -m 0640 -g "$PROSODY_USER" "$work/server.key" "$PROSODY_CERTS/server.key"
	rm -rf "$work"
fi

password="$(head -n 1 "$XMPP_BOT_PASSWORD_FILE")"
[ -n "$password" ] || { echo "entrypoint: $XMPP_BOT_PASSWORD_FILE is empty" >&2; exit 1; }
# register creates the account, or sets its password if it exists.
prosodyctl --config "$PROSODY_CONFIG" register "$XMPP_BOT_USER" "$XMPP_DOMAIN" "$password"
unset password
echo "entrypoint: account $XMPP_BOT_USER@$XMPP_DOMAIN ready; starting Prosody"

exec setpriv --reuid="$PROSODY_USER" --regid="$PROSODY_USER" --init-groups \
	prosody -F --config "$PROSODY_CONFIG"
