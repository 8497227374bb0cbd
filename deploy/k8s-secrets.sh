#!/usr/bin/env bash
# Makes the Secrets that k8s/components (client-tls, internal-tls, auth-tokens) mount, for trying
# k8s/overlays/cpu-secure: a throwaway CA, the client API's certificate, the certificate the coordinator and the
# workers share for mutual TLS, and one bearer token. In production issue the certificates from your own CA
# (cert-manager, with privateKey.encoding PKCS8) into Secrets of the same names and keys.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: deploy/k8s-secrets.sh [--out DIR] [--namespace NS] [--host NAME]... [--apply]

Writes to DIR (default target/k8s-secrets, replacing what is there):
  ca.crt, ca.key                the CA that signs both certificates (clients trust ca.crt: --tls-ca)
  client-tls.crt, .key          the client API's certificate: the Service flover in NS, localhost, 127.0.0.1
                                (kubectl port-forward) and each --host NAME (DNS name or IP address)
  internal-tls.crt, .key        coordinator <-> workers, for the name flover-worker, server and client auth
  tokens                        one bearer token (a client's --token-file)
  secrets.yaml                  the Secrets flover-client-tls, flover-internal-tls and flover-auth-tokens
--apply also runs kubectl apply -n NS -f DIR/secrets.yaml (NS defaults to the current context's namespace).
Needs openssl and kubectl (kubectl only renders the Secrets unless --apply).
EOF
}

out=target/k8s-secrets
namespace=
apply=false
hosts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --namespace|-n) namespace="$2"; shift 2 ;;
    --host) hosts+=("$2"); shift 2 ;;
    --apply) apply=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "k8s-secrets.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
for tool in openssl kubectl; do
  command -v "$tool" >/dev/null || { echo "k8s-secrets.sh: $tool is not on the PATH" >&2; exit 1; }
done
if [ -z "$namespace" ]; then
  namespace=$(kubectl config view --minify -o 'jsonpath={..namespace}' 2>/dev/null || true)
  namespace=${namespace:-default}
fi

mkdir -p "$out"
cd "$out"
umask 077
days=365

# The names a client may reach the Service flover by, in and outside the cluster.
san="DNS:flover,DNS:flover.$namespace,DNS:flover.$namespace.svc,DNS:flover.$namespace.svc.cluster.local"
san="$san,DNS:localhost,IP:127.0.0.1"
for h in "${hosts[@]}"; do
  if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
done

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days "$days" \
  -subj "/CN=flover throwaway CA" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# cert NAME SUBJECT SAN USAGE: NAME.crt signed by the CA, NAME.key in PKCS#8 (what --tls-key reads).
cert() {
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key.tmp" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$3" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days "$days" \
    -extfile "$1.ext" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$1.key.tmp" -out "$1.key"
  rm -f "$1.key.tmp" "$1.csr" "$1.ext" ca.srl
}
cert client-tls "flover" "$san" serverAuth
cert internal-tls "flover-worker" "DNS:flover-worker" serverAuth,clientAuth
openssl rand -hex 32 > tokens

{
  kubectl create secret tls flover-client-tls --cert=client-tls.crt --key=client-tls.key \
    --dry-run=client -o yaml
  echo ---
  kubectl create secret generic flover-internal-tls --type=kubernetes.io/tls --from-file=ca.crt=ca.crt \
    --from-file=tls.crt=internal-tls.crt --from-file=tls.key=internal-tls.key --dry-run=client -o yaml
  echo ---
  kubectl create secret generic flover-auth-tokens --from-file=tokens=tokens --dry-run=client -o yaml
} > secrets.yaml

echo "wrote $(pwd): the CA (ca.crt), certificates, a token and secrets.yaml (namespace $namespace)"
if $apply; then
  kubectl apply -n "$namespace" -f secrets.yaml
fi
