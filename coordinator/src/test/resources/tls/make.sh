#!/usr/bin/env bash
# Regenerates the test-only CA, server and client certificates in this folder.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days $days -subj "/CN=flover test CA" 2>/dev/null
# named: a certificate for a name only, not for the address it is reached at (coordinator --worker-tls-server-name)
for who in server client named; do
  openssl req -newkey rsa:2048 -nodes -keyout "$who.key.tmp" -out "$who.csr" -subj "/CN=flover test $who" 2>/dev/null
  san='DNS:localhost,IP:127.0.0.1'
  [ "$who" = named ] && san='DNS:flover-worker'
  printf 'subjectAltName=%s\n' "$san" > "$who.ext"
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$who.pem" -days $days \
    -extfile "$who.ext" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$who.key.tmp" -out "$who.key"   # gRPC reads PKCS#8 keys
  rm -f "$who.key.tmp" "$who.csr" "$who.ext"
done
rm -f ca.srl
