// crl.go owns the Go baseline of the certvigil revocation benchmark (benches/revocation.rs): the
// work of `certvigil crl CRL --issuer CA --serials-file SERIALS`, using only Go's standard library.
//
// It reads a CRL (DER, or PEM with an X509 CRL block), parses it with x509.ParseRevocationList,
// verifies its signature with CheckSignatureFrom against the CA certificate, builds a map from
// serial number to entry, and looks up every serial of the serials file (hex, one per line), the
// way a Go revocation checker is usually written.
//
// The work equals certvigil's: ParseRevocationList decodes every entry (serial, revocation
// time, reasonCode) and keeps its other extensions raw, so while indexing this program also
// decodes each entry's invalidityDate (RFC 5280 §5.3.2) and refuses a serial listed twice, as
// certvigil does while building its index; and each lookup's answer (reason, revocation time,
// invalidity date) is written out for the harness to check.
//
// It prints one JSON line on stdout for the harness to check against the generator:
//
//	{"tool":"go","entries":N,"verified":true,"lookups":N,"listed":N,"phases_s":{...}}
//
// and writes each looked-up serial's answer to the -answers file, in order, one line each:
// "SERIAL\tnot-listed" or "SERIAL\trevoked\tREASON_CODE\tREVOKED_UNIX\tINVALIDITY_UNIX" ("-"
// when the entry has no invalidityDate; reason 0 when it has no reasonCode).
//
// phases_s holds the seconds spent reading+parsing, verifying, indexing and looking up, so the
// report can say where the time goes. A CRL that does not verify exits 1.
//
// Usage: crl -crl FILE -ca FILE -serials FILE -answers FILE
package main

import (
	"bufio"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"
)

// id-ce-invalidityDate, RFC 5280 §5.3.2.
var oidInvalidityDate = asn1.ObjectIdentifier{2, 5, 29, 24}

// entry is one revoked certificate, decoded whole.
type entry struct {
	e          *x509.RevocationListEntry
	invalidity *time.Time
}

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
	answersPath := flag.String("answers", "", "where to write each lookup's answer")
	flag.Parse()
	if *crlPath == "" || *caPath == "" || *serialsPath == "" || *answersPath == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: crl -crl FILE -ca FILE -serials FILE -answers FILE")
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
	index := make(map[string]entry, len(crl.RevokedCertificateEntries))
	for i := range crl.RevokedCertificateEntries {
		e := &crl.RevokedCertificateEntries[i]
		var invalidity *time.Time
		for _, ext := range e.Extensions {
			if ext.Id.Equal(oidInvalidityDate) {
				var t time.Time
				rest, err := asn1.UnmarshalWithParams(ext.Value, &t, "generalized")
				if err != nil || len(rest) != 0 {
					fail("entry %d: invalidityDate is not a GeneralizedTime: %v", i, err)
				}
				invalidity = &t
			}
		}
		key := string(e.SerialNumber.Bytes())
		if _, dup := index[key]; dup {
			fail("serial %X is listed twice", e.SerialNumber)
		}
		index[key] = entry{e, invalidity}
	}
	indexed := time.Now()

	f, err := os.Open(*serialsPath)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	lookups, listed := 0, 0
	var answers strings.Builder
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
		found, ok := index[string(serial.Bytes())]
		if !ok {
			answers.WriteString(line + "\tnot-listed\n")
			continue
		}
		listed++
		invalidity := "-"
		if found.invalidity != nil {
			invalidity = strconv.FormatInt(found.invalidity.Unix(), 10)
		}
		fmt.Fprintf(&answers, "%s\trevoked\t%d\t%d\t%s\n", line, found.e.ReasonCode, found.e.RevocationTime.Unix(), invalidity)
	}
	if err := scanner.Err(); err != nil {
		fail("reading %s: %v", *serialsPath, err)
	}
	looked := time.Now()
	if err := os.WriteFile(*answersPath, []byte(answers.String()), 0o644); err != nil {
		fail("%v", err)
	}

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
