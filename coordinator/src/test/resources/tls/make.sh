#!/usr/bin/env bash
# Regenerates the test-only CA, server and client certificates in this folder.
set -euo pipefail
cd "$(dirname "$0")"
days=36500
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days $days -subj "/CN=flover test CA" 2>/dev/null
for who in server client; do
  openssl req -newkey rsa:2048 -nodes -keyout "$who.key.tmp" -out "$who.csr" -subj "/CN=flover test $who" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$who.ext"
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$who.pem" -days $days \
    -extfile "$who.ext" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$who.key.tmp" -out "$who.key"   # gRPC reads PKCS#8 keys
  rm -f "$who.key.tmp" "$who.csr" "$who.ext"
done
rm -f ca.srl
