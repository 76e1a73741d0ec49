#!/usr/bin/env bash
# Development PKI for phantom-sidecar: NOT for production.
#
#   certs/generate.sh [DIR] [--force]
#
# Makes, in DIR (default: certs/out):
#   ca.pem / ca.key                 development root CA (issues every certificate below)
#   server.pem / server.key         the sidecar's mTLS listener
#   as.pem / as.key                 the development authorization server
#   partner-a.*, partner-b.*        partner client certificates (.pem, .key, .p12)
#   partner-a-expired.*             partner A's key with a certificate that expired in 2020
#   rogue-ca.pem, rogue.*           a client certificate from a CA nobody trusts
#   introspection-client-secret     the sidecar's client secret at the development AS
#   introspection-client.key        the sidecar's private_key_jwt key (EC P-256) at the development AS
# PKCS#12 files use the password Password1 (curl --cert x.p12:Password1 --cert-type P12).
# Keys are made on this machine and never committed. Existing files are kept; --force
# makes everything anew.
set -euo pipefail

out=""
force=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) out="$arg" ;;
  esac
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${out:-$here/out}"
p12_password="Password1"

# The names each server answers to: loopback for the demo, the compose services, the
# Kubernetes Service of deploy/k8s, and the example public name.
server_sans="DNS:localhost,IP:127.0.0.1,DNS:api.example.com,DNS:sidecar,DNS:partner-api,DNS:partner-api.default.svc,DNS:partner-api.default.svc.cluster.local"
as_sans="DNS:localhost,IP:127.0.0.1,DNS:authorization-server,DNS:login.example.com"

expected=(introspection-client-secret introspection-client.key ca.pem server.pem server.key as.pem as.key partner-a.pem partner-a.key partner-a.p12 partner-b.pem partner-b.key partner-b.p12 partner-a-expired.pem rogue-ca.pem rogue.pem rogue.key rogue.p12)

all_present() {
  local f
  for f in "${expected[@]}"; do [ -s "$out/$f" ] || return 1; done
}

if [ "$force" -eq 0 ] && all_present; then
  echo "certificates already in $out (use --force to make new ones)"
  exit 0
fi

command -v openssl >/dev/null || { echo "generate.sh: openssl is required" >&2; exit 1; }
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# new_ca NAME SUBJECT
new_ca() {
  new_key "$out/$1.key"
  openssl req -x509 -new -key "$out/$1.key" -sha256 -days 825 -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/$1.pem"
}

# issue CA NAME SUBJECT EXTENSIONS...
issue() {
  local ca="$1" name="$2" subject="$3"
  shift 3
  local ext="$work/$name.ext"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "$@" > "$ext"
  [ -s "$out/$name.key" ] && [ "$force" -eq 0 ] || new_key "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "$subject" -out "$work/$name.csr"
  openssl x509 -req -in "$work/$name.csr" -CA "$out/$ca.pem" -CAkey "$out/$ca.key" \
    -CAcreateserial -CAserial "$work/$ca.srl" -sha256 -days 397 -extfile "$ext" -out "$out/$name.pem" 2>/dev/null
}

client_extensions=("keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth")

# pkcs12 NAME: the certificate, its key and the CA chain, for curl and browsers.
pkcs12() {
  openssl pkcs12 -export -in "$out/$1.pem" -inkey "$out/$1.key" -certfile "$out/$2.pem" \
    -name "$1" -passout "pass:$p12_password" -out "$out/$1.p12"
}

# expired NAME: a certificate for NAME's key whose validity ended in 2020. OpenSSL 3.0's
# `x509 -req` cannot back-date, so this goes through `openssl ca`.
expired() {
  local db="$work/ca-db"
  mkdir -p "$db"
  : > "$db/index.txt"
  echo 1000 > "$db/serial"
  cat > "$db/ca.cnf" <<EOF
[ ca ]
default_ca = dev
[ dev ]
database = $db/index.txt
serial = $db/serial
new_certs_dir = $db
default_md = sha256
policy = any
copy_extensions = none
x509_extensions = client
[ any ]
commonName = supplied
organizationName = optional
[ client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
  openssl req -new -key "$out/$1.key" -subj "/O=Partner A Ltd/CN=$1" -out "$work/$1-expired.csr"
  openssl ca -batch -config "$db/ca.cnf" -cert "$out/ca.pem" -keyfile "$out/ca.key" \
    -startdate 20200101000000Z -enddate 20200201000000Z -notext \
    -in "$work/$1-expired.csr" -out "$out/$1-expired.pem" 2>/dev/null
}

new_ca ca "/O=phantom-sidecar development/CN=phantom-sidecar dev root CA"
issue ca server "/O=phantom-sidecar development/CN=phantom-sidecar" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" "subjectAltName=$server_sans"
issue ca as "/O=phantom-sidecar development/CN=authorization-server" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" "subjectAltName=$as_sans"
for partner in partner-a partner-b; do
  letter="${partner#partner-}"
  issue ca "$partner" "/O=Partner ${letter^^} Ltd/CN=$partner" "${client_extensions[@]}" "subjectAltName=DNS:$partner.example.com"
  pkcs12 "$partner" ca
done
expired partner-a

new_ca rogue-ca "/O=Not a partner/CN=rogue CA"
issue rogue-ca rogue "/O=Not a partner/CN=partner-a" "${client_extensions[@]}" "subjectAltName=DNS:partner-a.example.com"
pkcs12 rogue rogue-ca
rm -f "$out/rogue-ca.key"

# The sidecar's development client secret at the development AS (a file, as a mounted Secret).
if [ "$force" -eq 1 ] || [ ! -s "$out/introspection-client-secret" ]; then
  openssl rand -base64 32 | tr '+/' '-_' | tr -d '=' > "$out/introspection-client-secret"
fi
# The sidecar's key for private_key_jwt client authentication (FAPI 2.0) at the development AS.
if [ "$force" -eq 1 ] || [ ! -s "$out/introspection-client.key" ]; then
  new_key "$out/introspection-client.key"
fi
chmod 0644 "$out"/*.pem "$out"/*.p12 "$out/introspection-client-secret"
# Readable by the containers' non-root user; these are development keys only.
chmod 0644 "$out"/*.key
chmod 0600 "$out/ca.key"
echo "development certificates written to $out"
for name in partner-a partner-b; do
  printf '  %-10s x5t#S256 %s\n' "$name" \
    "$(openssl x509 -in "$out/$name.pem" -outform DER | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')"
done
