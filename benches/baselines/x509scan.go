// x509scan.go owns the Go baseline of the certvigil scan benchmark (benches/scan.rs): the same
// work as a certvigil files scan minus the store, using only Go's standard library.
//
// It walks a directory tree, reads every regular file, parses every certificate in it (every
// CERTIFICATE block of a PEM file, or the whole file as DER when it holds no PEM), computes the
// SHA-256 of each certificate's DER and extracts notAfter. One goroutine walks and -workers
// goroutines (default GOMAXPROCS, the usual Go worker pool) read and parse.
//
// It prints one JSON line on stdout for the harness to check against the generator:
//
//	{"tool":"go","files":N,"certs":N,"errors":N,"fingerprint_xor":"hex","not_after_sum":N}
//
// fingerprint_xor is the XOR of all SHA-256 fingerprints and not_after_sum the sum of all
// notAfter times (Unix seconds): order-independent digests proving every tool parsed the same
// certificates, and keeping the work from being optimised away.
//
// Usage: x509scan [-workers N] DIR
package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
)

// tally is one worker's running totals, merged at the end (no shared state while scanning).
type tally struct {
	files, certs, errors int64
	xor                  [sha256.Size]byte
	notAfterSum          int64
}

func (t *tally) addCert(der []byte) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(der)
	for i := range sum {
		t.xor[i] ^= sum[i]
	}
	t.notAfterSum += cert.NotAfter.Unix()
	t.certs++
	return nil
}

var pemMarker = []byte("-----BEGIN ")

// scanFile parses every certificate in one file; errors are counted, not fatal, as a scanner
// must survive a bad file.
func (t *tally) scanFile(path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "x509scan: %s: %v\n", path, err)
		t.errors++
		return
	}
	t.files++
	if !bytes.Contains(data, pemMarker) {
		if err := t.addCert(data); err != nil {
			fmt.Fprintf(os.Stderr, "x509scan: %s: DER: %v\n", path, err)
			t.errors++
		}
		return
	}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if err := t.addCert(block.Bytes); err != nil {
			fmt.Fprintf(os.Stderr, "x509scan: %s: PEM: %v\n", path, err)
			t.errors++
		}
	}
}

func main() {
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "parser goroutines")
	flag.Parse()
	if flag.NArg() != 1 || *workers < 1 {
		fmt.Fprintln(os.Stderr, "usage: x509scan [-workers N] DIR")
		os.Exit(2)
	}
	root := flag.Arg(0)

	paths := make(chan string, 1024)
	tallies := make([]tally, *workers)
	var wg sync.WaitGroup
	for w := range tallies {
		wg.Add(1)
		go func(t *tally) {
			defer wg.Done()
			for p := range paths {
				t.scanFile(p)
			}
		}(&tallies[w])
	}

	walkErr := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths <- path
		}
		return nil
	})
	close(paths)
	wg.Wait()
	if walkErr != nil {
		fmt.Fprintf(os.Stderr, "x509scan: walking %s: %v\n", root, walkErr)
		os.Exit(1)
	}

	var total tally
	for _, t := range tallies {
		total.files += t.files
		total.certs += t.certs
		total.errors += t.errors
		total.notAfterSum += t.notAfterSum
		for i := range t.xor {
			total.xor[i] ^= t.xor[i]
		}
	}
	out, _ := json.Marshal(map[string]any{
		"tool":            "go",
		"workers":         *workers,
		"files":           total.files,
		"certs":           total.certs,
		"errors":          total.errors,
		"fingerprint_xor": hex.EncodeToString(total.xor[:]),
		"not_after_sum":   total.notAfterSum,
	})
	fmt.Println(string(out))
}
