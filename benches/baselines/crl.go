// crl.go owns the Go baseline of the certvigil revocation benchmark (benches/revocation.rs): the
// work of `certvigil crl CRL --issuer CA --serials-file SERIALS`, using only Go's standard library.
//
// It reads a CRL (DER, or PEM with an X509 CRL block), parses it with x509.ParseRevocationList,
// verifies its signature with CheckSignatureFrom against the CA certificate, builds a map from
// serial number to entry, and looks up every serial of the serials file (hex, one per line), the
// way a Go revocation checker is usually written.
//
// It prints one JSON line on stdout for the harness to check against the generator:
//
//	{"tool":"go","entries":N,"verified":true,"lookups":N,"listed":N,"phases_s":{...}}
//
// phases_s holds the seconds spent reading+parsing, verifying, indexing and looking up, so the
// report can say where the time goes. A CRL that does not verify exits 1.
//
// Usage: crl -crl FILE -ca FILE -serials FILE
package main

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crl.go: "+format+"\n", args...)
	os.Exit(1)
}

// readDER returns the DER of the first block with the given PEM type, or the data itself when it
// holds no PEM.
func readDER(path, pemType string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return data
		}
		if block.Type == pemType {
			return block.Bytes
		}
	}
}

func main() {
	crlPath := flag.String("crl", "", "the CRL (DER or PEM)")
	caPath := flag.String("ca", "", "the issuing CA certificate (PEM or DER)")
	serialsPath := flag.String("serials", "", "serial numbers to look up, hex, one per line")
	flag.Parse()
	if *crlPath == "" || *caPath == "" || *serialsPath == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: crl -crl FILE -ca FILE -serials FILE")
		os.Exit(2)
	}

	start := time.Now()
	crl, err := x509.ParseRevocationList(readDER(*crlPath, "X509 CRL"))
	if err != nil {
		fail("parsing %s: %v", *crlPath, err)
	}
	parsed := time.Now()

	ca, err := x509.ParseCertificate(readDER(*caPath, "CERTIFICATE"))
	if err != nil {
		fail("parsing %s: %v", *caPath, err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		fail("%s is not signed by %s: %v", *crlPath, ca.Subject, err)
	}
	verified := time.Now()

	// Keyed by the serial's big-endian magnitude, the usual Go idiom for a serial set.
	index := make(map[string]*x509.RevocationListEntry, len(crl.RevokedCertificateEntries))
	for i := range crl.RevokedCertificateEntries {
		e := &crl.RevokedCertificateEntries[i]
		index[string(e.SerialNumber.Bytes())] = e
	}
	indexed := time.Now()

	f, err := os.Open(*serialsPath)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	lookups, listed := 0, 0
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.ReplaceAll(strings.TrimSpace(scanner.Text()), ":", "")
		if line == "" {
			continue
		}
		serial, ok := new(big.Int).SetString(line, 16)
		if !ok {
			fail("serial %q is not hex", line)
		}
		lookups++
		if _, found := index[string(serial.Bytes())]; found {
			listed++
		}
	}
	if err := scanner.Err(); err != nil {
		fail("reading %s: %v", *serialsPath, err)
	}
	looked := time.Now()

	out, _ := json.Marshal(map[string]any{
		"tool":     "go",
		"entries":  len(crl.RevokedCertificateEntries),
		"verified": true,
		"lookups":  lookups,
		"listed":   listed,
		"phases_s": map[string]float64{
			"parse":  parsed.Sub(start).Seconds(),
			"verify": verified.Sub(parsed).Seconds(),
			"index":  indexed.Sub(verified).Seconds(),
			"lookup": looked.Sub(indexed).Seconds(),
		},
	})
	fmt.Println(string(out))
}
