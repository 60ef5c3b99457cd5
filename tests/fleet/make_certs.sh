#!/usr/bin/env bash
# make_certs.sh DIR [HOST_IP...]: a test PKI made with openssl, the same
# commands docs/FLEET.md gives operators:
#   ca.{pem,key}            the fleet CA
#   agent.{pem,key}         the agents' server certificate (SAN DNS:devmem-agent,
#                           IP:127.0.0.1 and each HOST_IP)
#   launcher.{pem,key}      SAN URI spiffe://fleet/launcher/a
#   launcher2.{pem,key}     SAN URI spiffe://fleet/launcher/b
#   operator.{pem,key}      SAN DNS ops.fleet.test
#   observer.{pem,key}      CN monitor (no SAN)
#   norole.{pem,key}        SAN URI spiffe://fleet/nobody (signed, no role)
#   expired.{pem,key}       the launcher identity, valid only in 2020
#   foreign.{pem,key}       the launcher identity, signed by another CA
set -euo pipefail
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
q() { "$@" >/dev/null 2>&1 || { echo "make_certs: failed: $*" >&2; "$@"; exit 1; }; }

key() { q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }

# ca NAME: a self-signed CA.
ca() {
  key "$1"
  q openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 \
    -subj "/CN=$1 test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# leaf NAME CA CN SAN USAGE [DAYS]: a certificate for NAME signed by CA.
leaf() {
  local name=$1 ca=$2 cn=$3 san=$4 usage=$5 days=${6:-30}
  key "$name"
  q openssl req -new -key "$name.key" -out "$name.csr" -subj "/CN=$cn"
  {
    [[ -n $san ]] && echo "subjectAltName=$san"
    echo "extendedKeyUsage=$usage"
    echo "basicConstraints=critical,CA:FALSE"
  } >"$name.ext"
  q openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
    -CAcreateserial -out "$name.pem" -days "$days" -extfile "$name.ext"
  rm -f "$name.csr" "$name.ext"
}

ca ca
ca foreign-ca
san="DNS:devmem-agent,IP:127.0.0.1"
for ip in "$@"; do san+=",IP:$ip"; done
leaf agent ca devmem-agent "$san" serverAuth 365
leaf launcher ca launcher-a "URI:spiffe://fleet/launcher/a" clientAuth
leaf launcher2 ca launcher-b "URI:spiffe://fleet/launcher/b" clientAuth
leaf operator ca operator "DNS:ops.fleet.test" clientAuth
leaf observer ca monitor "" clientAuth
leaf norole ca nobody "URI:spiffe://fleet/nobody" clientAuth
leaf foreign foreign-ca launcher-a "URI:spiffe://fleet/launcher/a" clientAuth

# Expired: `openssl ca` takes explicit dates (x509 -req cannot go back).
key expired
q openssl req -new -key expired.key -out expired.csr -subj "/CN=launcher-a"
mkdir -p ca-db
: >ca-db/index.txt
echo 1000 >ca-db/serial
cat >ca-db/ca.cnf <<CNF
[ca]
default_ca = test
[test]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
x509_extensions = ext
copy_extensions = none
[any]
commonName = supplied
[ext]
subjectAltName = URI:spiffe://fleet/launcher/a
extendedKeyUsage = clientAuth
basicConstraints = critical,CA:FALSE
CNF
q openssl ca -batch -config ca-db/ca.cnf -cert ca.pem -keyfile ca.key \
  -in expired.csr -out expired.pem -startdate 20200101000000Z \
  -enddate 20200102000000Z -notext
rm -rf expired.csr ca-db
chmod 0644 ./*.pem ./*.key
