#!/bin/sh
# Make the secrets docker/compose.yaml and docker/compose.cluster.yaml read, as random values in
# docker/secrets/ (or the directory given). An existing file is kept, so running it again changes
# nothing. The directory is private (0700) and each file readable (0644), because a compose
# secret from a file is that file bind-mounted with its own mode, and the services read them as
# their own users (burstbus: uid 10001). Swarm: `docker secret create NAME FILE` instead.
set -eu
dir="${1:-$(dirname "$0")/secrets}"
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
for name in http_token nats_token xmpp_password; do
	file="$dir/$name"
	if [ -s "$file" ]; then
		echo "kept $file"
		continue
	fi
	# 40 letters and digits: safe in a NATS config, a URL, a shell and an XMPP password.
	value="$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 40)"
	printf '%s\n' "$value" > "$file"
	chmod 0644 "$file"
	echo "made $file"
done
