#!/usr/bin/env bash
# Regenerates the example certificates in config/examples/certs (see README.md beside this
# script). Needs openssl (3.x) and keytool. Keys are thrown away: these files are for showing what
# certvigil reports, never for use. Their CRL, OCSP and CA-issuer URLs are on 127.0.0.1:1, where
# nothing listens: checking them asks no resolver and sends nothing off the host.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)/certs
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir newcerts; : > index.txt; echo 1000 > serial
cat > ca.cnf <<'CNF'
[ ca ]
default_ca = exampleca
[ exampleca ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
serial = ./serial
certificate = ./ca.crt
private_key = ./ca.key
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[ any ]
commonName = supplied
organizationName = optional
[ web ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:www.example.net, DNS:example.net
authorityInfoAccess = OCSP;URI:http://127.0.0.1:1/ocsp, caIssuers;URI:http://127.0.0.1:1/ca.crt
crlDistributionPoints = URI:http://127.0.0.1:1/ca.crl
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
[ codesign ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = codeSigning
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7300 \
  -subj "/O=certvigil examples/CN=certvigil Example Root CA" -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:1" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() {  # name subject ext start end keyspec
  openssl req -new -newkey "$6" -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl ca -batch -config ca.cnf -extensions "$3" -startdate "$4" -enddate "$5" -in "$1.csr" -out "$1.crt" 2>/dev/null
  openssl x509 -in "$1.crt" -out "$1.crt"   # drop the text dump openssl ca prepends
}
issue web "/O=certvigil examples/CN=www.example.net" web 20250101000000Z 20350101000000Z ec:<(openssl ecparam -name prime256v1)
issue legacy "/O=certvigil examples/CN=legacy.example.net" web 20200101000000Z 20210101000000Z rsa:2048
issue codesign "/O=certvigil examples/CN=certvigil Example Code Signing" codesign 20250101000000Z 20330101000000Z ec:<(openssl ecparam -name secp384r1)
rm -f "$out"/*
cat web.crt ca.crt > "$out/web-fullchain.pem"
cp legacy.crt "$out/legacy-expired.pem"
openssl x509 -in codesign.crt -outform DER -out "$out/codesign.der"
openssl crl2pkcs7 -nocrl -certfile web.crt -certfile ca.crt -outform DER -out "$out/chain.p7b"
openssl pkcs12 -export -inkey web.key -in web.crt -certfile ca.crt -name web -passout pass: -certpbe NONE -keypbe NONE -nomac -out "$out/web-nopassword.p12"
keytool -importcert -noprompt -storetype JKS -keystore "$out/truststore.jks" -storepass changeit -alias example-root -file ca.crt >/dev/null 2>&1
echo "wrote $(ls "$out" | wc -l) files to $out"
