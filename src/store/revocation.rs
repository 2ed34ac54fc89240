//! Store access for revocation: statuses and their history, CRL conditional-GET state, OCSP
//! answer cache, issuer certificates fetched from AIA.

use super::db::{Row, ToValue, params};
use super::{CERT_COLUMNS, CertRow, Result, Store, cert_from_row};
use crate::model::rows::{CachedOcsp, CrlCacheRow, RevocationHistoryRow};
use crate::model::{RevocationState, RevocationStatus, UnixTime};
use std::collections::HashMap;

fn status_from_row(r: &Row<'_>, base: usize) -> Result<RevocationStatus> {
    let state: String = r.get(base)?;
    Ok(RevocationStatus {
        state: RevocationState::parse(&state).unwrap_or(RevocationState::Unknown),
        reason: r.get(base + 1)?,
        revoked_at: r.get(base + 2)?,
        invalidity_date: r.get(base + 3)?,
        method: r.get(base + 4)?,
        source_url: r.get(base + 5)?,
        evidence_sha256: r.get(base + 6)?,
        checked_at: r.get(base + 7)?,
        next_update: r.get(base + 8)?,
        stale: r.get(base + 9)?,
        detail: r.get(base + 10)?,
    })
}

/// A certificate row followed by its DER (column 27).
fn cert_with_der(r: &Row<'_>) -> Result<(CertRow, Vec<u8>)> {
    Ok((cert_from_row(r)?, r.get::<Vec<u8>>(27)?))
}

const STATUS_COLUMNS: &str =
    "status, reason, revoked_at, invalidity_date, method, source_url, evidence_sha256, checked_at, next_update, stale, detail";

impl Store {
    /// Certificates that may have issued a certificate with this authority key identifier and
    /// issuer name (the DER of its `issuer` field): by subject key identifier first, then by
    /// subject name compared as RFC 5280 §7.1 says (case, string type and insignificant spaces
    /// do not count; the indexed `subject_key`). The caller verifies the signature to choose.
    pub fn issuer_candidates(&self, aki: Option<&str>, issuer_name_der: &[u8]) -> Result<Vec<(CertRow, Vec<u8>)>> {
        let by_ski = format!("SELECT {CERT_COLUMNS}, c.der FROM certificates c WHERE c.ski = ?1 ORDER BY c.not_after DESC");
        let by_name = format!("SELECT {CERT_COLUMNS}, c.der FROM certificates c WHERE c.subject_key = ?1 ORDER BY c.not_after DESC");
        let run = |sql: &str, arg: &dyn ToValue| -> Result<Vec<(CertRow, Vec<u8>)>> { self.conn.query_map(sql, &[arg], cert_with_der) };
        if let Some(aki) = aki {
            let found = run(&by_ski, &aki)?;
            if !found.is_empty() {
                return Ok(found);
            }
        }
        // A name that is not a Name matches no subject (x509::name::names_match).
        match crate::x509::name::name_key(issuer_name_der) {
            Some(key) => run(&by_name, &key),
            None => Ok(Vec::new()),
        }
    }

    pub fn revocation_status(&self, cert_id: i64) -> Result<Option<RevocationStatus>> {
        let sql = format!("SELECT {STATUS_COLUMNS} FROM revocation_status WHERE cert_id = ?1");
        self.conn.query_opt(&sql, params![cert_id], |r| status_from_row(r, 0))
    }

    /// The revocation state of every certificate that has one (a few bytes each, for listings
    /// that show only the state).
    pub fn revocation_states(&self) -> Result<HashMap<i64, RevocationState>> {
        let mut out = HashMap::new();
        self.conn.query_each("SELECT cert_id, status FROM revocation_status", params![], |r| {
            let state = RevocationState::parse(r.get_ref(1)?.as_str()?).unwrap_or(RevocationState::Unknown);
            out.insert(r.get::<i64>(0)?, state);
            Ok(())
        })?;
        Ok(out)
    }

    pub fn revocation_statuses(&self) -> Result<HashMap<i64, RevocationStatus>> {
        let sql = format!("SELECT cert_id, {STATUS_COLUMNS} FROM revocation_status");
        let mut out = HashMap::new();
        self.conn.query_each(&sql, params![], |r| {
            out.insert(r.get::<i64>(0)?, status_from_row(r, 1)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Store::revocation_statuses`] of the certificates `ids` only.
    pub fn revocation_statuses_of(&self, ids: &[i64]) -> Result<HashMap<i64, RevocationStatus>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(super::IN_LIST_MAX) {
            let sql =
                format!("SELECT cert_id, {STATUS_COLUMNS} FROM revocation_status WHERE cert_id IN ({})", super::placeholders(chunk.len()));
            let values: Vec<&dyn ToValue> = chunk.iter().map(|id| id as &dyn ToValue).collect();
            self.conn.query_each(&sql, &values, |r| {
                out.insert(r.get::<i64>(0)?, status_from_row(r, 1)?);
                Ok(())
            })?;
        }
        Ok(out)
    }

    pub fn revocation_history(&self, cert_id: i64) -> Result<Vec<RevocationHistoryRow>> {
        self.conn.query_map(
            "SELECT at, status, reason, method, evidence_sha256, detail FROM revocation_history WHERE cert_id = ?1 ORDER BY id",
            params![cert_id],
            |r| {
                Ok(RevocationHistoryRow {
                    at: r.get(0)?,
                    status: r.get(1)?,
                    reason: r.get(2)?,
                    method: r.get(3)?,
                    evidence_sha256: r.get(4)?,
                    detail: r.get(5)?,
                })
            },
        )
    }

    /// Saves statuses in one transaction; appends history when state or reason changed.
    pub fn save_revocations(&mut self, results: &[(i64, RevocationStatus)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (cert_id, s) in results {
            let prev: Option<(String, Option<String>)> =
                tx.query_opt("SELECT status, reason FROM revocation_status WHERE cert_id = ?1", params![cert_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            // Revocation is permanent (RFC 5280 §3.3) except for certificateHold: evidence that
            // can no longer be had (an unreachable responder, a CA without CRL or OCSP) does not
            // turn a known revocation back into `unknown`.
            if s.state == RevocationState::Unknown
                && prev.as_ref().is_some_and(|(st, re)| st == "revoked" && re.as_deref() != Some("certificateHold"))
            {
                continue;
            }
            tx.execute(
                &format!(
                    "INSERT INTO revocation_status (cert_id, {STATUS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT(cert_id) DO UPDATE SET status = excluded.status, reason = excluded.reason, revoked_at = excluded.revoked_at,
                       invalidity_date = excluded.invalidity_date, method = excluded.method, source_url = excluded.source_url,
                       evidence_sha256 = excluded.evidence_sha256, checked_at = excluded.checked_at, next_update = excluded.next_update,
                       stale = excluded.stale, detail = excluded.detail"
                ),
                params![
                    cert_id,
                    s.state.as_str(),
                    s.reason,
                    s.revoked_at,
                    s.invalidity_date,
                    s.method,
                    s.source_url,
                    s.evidence_sha256,
                    s.checked_at,
                    s.next_update,
                    s.stale,
                    s.detail
                ],
            )?;
            let changed = prev.as_ref().is_none_or(|(st, re)| st != s.state.as_str() || *re != s.reason);
            if changed {
                super::audit::append(
                    &tx,
                    s.checked_at,
                    "revocation",
                    "certvigil",
                    &serde_json::json!({"cert_id": cert_id, "status": s.state.as_str(), "reason": s.reason, "method": s.method, "evidence_sha256": s.evidence_sha256}),
                )?;
                tx.execute(
                    "INSERT INTO revocation_history (cert_id, at, status, reason, method, evidence_sha256, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![cert_id, s.checked_at, s.state.as_str(), s.reason, s.method, s.evidence_sha256, s.detail],
                )?;
                let level_revoked = s.state == RevocationState::Revoked;
                if level_revoked {
                    tracing::warn!(cert_id, reason = s.reason.as_deref().unwrap_or(""), method = %s.method, "certificate is revoked");
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn ocsp_cached(&self, cert_id: i64, now: UnixTime) -> Result<Option<CachedOcsp>> {
        self.conn.query_opt(
            "SELECT responder, status, revoked_at, reason, this_update, next_update, cache_until, sha256 FROM ocsp_cache WHERE cert_id = ?1 AND cache_until > ?2",
            params![cert_id, now],
            |r| {
                Ok(CachedOcsp {
                    responder: r.get(0)?,
                    status: r.get(1)?,
                    revoked_at: r.get(2)?,
                    reason: r.get(3)?,
                    this_update: r.get(4)?,
                    next_update: r.get(5)?,
                    cache_until: r.get(6)?,
                    sha256: r.get(7)?,
                })
            },
        )
    }

    pub fn ocsp_cache_put(&self, cert_id: i64, c: &CachedOcsp, response: &[u8]) -> Result<()> {
        self.conn.execute(
            "INSERT INTO ocsp_cache (cert_id, responder, status, revoked_at, reason, this_update, next_update, cache_until, sha256, response)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(cert_id) DO UPDATE SET responder = excluded.responder, status = excluded.status, revoked_at = excluded.revoked_at,
               reason = excluded.reason, this_update = excluded.this_update, next_update = excluded.next_update,
               cache_until = excluded.cache_until, sha256 = excluded.sha256, response = excluded.response",
            params![cert_id, c.responder, c.status, c.revoked_at, c.reason, c.this_update, c.next_update, c.cache_until, c.sha256, response],
        )?;
        Ok(())
    }

    pub fn crl_cache_get(&self, url: &str) -> Result<Option<CrlCacheRow>> {
        self.conn.query_opt("SELECT etag, last_modified, sha256 FROM crl_cache WHERE url = ?1", params![url], |r| {
            Ok(CrlCacheRow { etag: r.get(0)?, last_modified: r.get(1)?, sha256: r.get(2)? })
        })
    }

    /// Records a downloaded CRL: its conditional-GET validators and what it says of itself.
    pub fn crl_cache_put(
        &self,
        url: &str,
        etag: Option<&str>,
        last_modified: Option<&str>,
        now: UnixTime,
        crl: &CrlFacts<'_>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO crl_cache (url, etag, last_modified, fetched_at, sha256, this_update, next_update, size, issuer, crl_number)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT(url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified, fetched_at = excluded.fetched_at,
               sha256 = excluded.sha256, this_update = excluded.this_update, next_update = excluded.next_update, size = excluded.size,
               issuer = excluded.issuer, crl_number = excluded.crl_number",
            params![url, etag, last_modified, now, crl.sha256, crl.this_update, crl.next_update, crl.size as i64, crl.issuer, crl.number],
        )?;
        Ok(())
    }

    /// Records that the CRL at `url` with these bytes (`sha256`) verified against its issuer at
    /// `now`; nothing happens when the stored copy is another one.
    pub fn crl_verified(&self, url: &str, sha256: &str, now: UnixTime) -> Result<()> {
        self.conn.execute(
            "UPDATE crl_cache SET verified_sha256 = ?2, verified_at = ?3 WHERE url = ?1 AND sha256 = ?2",
            params![url, sha256, now],
        )?;
        Ok(())
    }

    pub fn issuer_cache_get(&self, url: &str) -> Result<Option<(Option<Vec<u8>>, UnixTime)>> {
        self.conn.query_opt("SELECT der, fetched_at FROM issuer_cache WHERE url = ?1", params![url], |r| Ok((r.get(0)?, r.get(1)?)))
    }

    pub fn issuer_cache_put(&self, url: &str, der: Option<&[u8]>, now: UnixTime, error: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT INTO issuer_cache (url, der, fetched_at, error) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(url) DO UPDATE SET der = excluded.der, fetched_at = excluded.fetched_at, error = excluded.error",
            params![url, der, now, error],
        )?;
        Ok(())
    }

    /// Current certificates with their DER, for a revocation pass: all, or the given ids.
    /// Ids of the certificates still present, in id order: what a revocation pass walks in
    /// batches.
    pub fn current_certificate_ids(&self) -> Result<Vec<i64>> {
        self.conn.query_map("SELECT id FROM certificates WHERE gone_since IS NULL ORDER BY id", params![], |r| r.get::<i64>(0))
    }

    /// Ids of the current certificates in share `share` of `shares` (see [`revocation_share`]):
    /// with several daemons on one store, each checks a share, and every certificate of one
    /// issuer falls in the same share, so each CRL is fetched by one daemon.
    pub fn current_certificate_ids_in_share(&self, share: u32, shares: u32) -> Result<Vec<i64>> {
        let rows =
            self.conn.query_map("SELECT id, aki, issuer FROM certificates WHERE gone_since IS NULL ORDER BY id", params![], |r| {
                Ok((r.get::<i64>(0)?, r.get::<Option<String>>(1)?, r.get::<String>(2)?))
            })?;
        Ok(rows
            .into_iter()
            .filter(|(_, aki, issuer)| revocation_share(aki.as_deref(), issuer, shares) == share)
            .map(|(id, _, _)| id)
            .collect())
    }

    /// The given certificates (in the order given; ids not found are left out), or every
    /// current one in id order, each with its DER: one statement per few hundred ids.
    pub fn certificates_with_der(&self, ids: Option<&[i64]>) -> Result<Vec<(CertRow, Vec<u8>)>> {
        match ids {
            None => {
                let sql = format!("SELECT {CERT_COLUMNS}, c.der FROM certificates c WHERE c.gone_since IS NULL ORDER BY c.id");
                self.conn.query_map(&sql, params![], cert_with_der)
            }
            Some(ids) => {
                let head = format!("SELECT {CERT_COLUMNS}, c.der FROM certificates c WHERE c.id");
                let mut found: HashMap<i64, (CertRow, Vec<u8>)> = HashMap::with_capacity(ids.len());
                self.conn.query_in(&head, &[], ids, "", |r| {
                    let (row, der) = cert_with_der(r)?;
                    found.insert(row.id, (row, der));
                    Ok(())
                })?;
                Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
            }
        }
    }
}

/// The share (of `shares`) a certificate's revocation check falls in: a stable hash (the
/// first 8 bytes of a SHA-256, the same on every daemon and every release) of its issuer's key
/// identifier, or of its issuer's name when it names no key. Certificates of one issuer share
/// a CRL and an OCSP responder, so they are checked together.
pub fn revocation_share(aki: Option<&str>, issuer: &str, shares: u32) -> u32 {
    use sha2::Digest;
    let key = match aki {
        Some(k) => sha2::Sha256::new().chain_update(b"aki:").chain_update(k.as_bytes()).finalize(),
        None => sha2::Sha256::new().chain_update(b"issuer:").chain_update(issuer.as_bytes()).finalize(),
    };
    let n = u64::from_be_bytes(key[..8].try_into().unwrap_or([0; 8]));
    (n % u64::from(shares.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::super::tests::ca_and_leaf_naming_it_differently;
    use super::super::{ObjectOutcome, Store};
    use crate::x509::cert::raw_parts;

    #[test]
    fn issuer_found_by_name_in_another_case_string_type_and_spacing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let (ca, leaf) = ca_and_leaf_naming_it_differently();
        let mut w = store.begin_scan(100, &["files".to_string()]).unwrap();
        w.register_source("files", "files", &[]).unwrap();
        for (location, der) in [("/pki/ca.der", &ca), ("/pki/leaf.der", &leaf)] {
            let parsed = crate::x509::parse_object(der, &[]);
            assert_eq!(parsed.certs.len(), 1);
            w.record("files", location, None, ObjectOutcome::Parsed { stamp: "s", content_sha256: "00", parsed: &parsed }).unwrap();
        }
        w.finish().unwrap();
        let ca_facts = crate::x509::parse_object(&ca, &[]).certs.remove(0).facts;
        let leaf_facts = crate::x509::parse_object(&leaf, &[]).certs.remove(0).facts;
        // The texts differ ("CN=Example CA,O=Example" and "CN=example  ca,O=EXAMPLE"): looked up
        // by text, the leaf had no issuer in the inventory.
        assert_ne!(leaf_facts.issuer, ca_facts.subject);
        let issuer_name = raw_parts(&leaf).unwrap().issuer;
        let ca_fp = vec![ca_facts.fingerprint.0.clone()];
        let found = |aki: Option<&str>, name: &[u8]| -> Vec<String> {
            store.issuer_candidates(aki, name).unwrap().into_iter().map(|(row, _)| row.facts.fingerprint.0).collect()
        };
        assert_eq!(found(None, issuer_name), ca_fp);
        // A key identifier that names no stored certificate falls back to the name.
        assert_eq!(found(Some("00112233"), issuer_name), ca_fp);
        // By key identifier when it names one, whatever the name.
        let ski = ca_facts.ski.clone().expect("the CA has a subject key identifier");
        assert_eq!(found(Some(&ski), b"\x30\x00"), ca_fp);
        // Another name, or bytes that are not a name: nothing.
        assert!(found(None, raw_parts(&leaf).unwrap().subject).iter().all(|f| *f == leaf_facts.fingerprint.0));
        assert!(found(None, b"\x30\x00").is_empty());
        assert!(found(None, b"not a name").is_empty());

        // Shares of the revocation check partition the current certificates, and the ids asked
        // for come back in the order asked, with their DER.
        let all = store.current_certificate_ids().unwrap();
        assert_eq!(all.len(), 2);
        for shares in 1..=5 {
            let mut seen: Vec<i64> = (0..shares).flat_map(|k| store.current_certificate_ids_in_share(k, shares).unwrap()).collect();
            seen.sort_unstable();
            assert_eq!(seen, all, "{shares} shares");
        }
        let reversed: Vec<i64> = all.iter().rev().copied().chain([999_999]).collect();
        let got = store.certificates_with_der(Some(&reversed)).unwrap();
        assert_eq!(got.iter().map(|(c, _)| c.id).collect::<Vec<_>>(), all.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(got.last().map(|(_, der)| der.as_slice()), Some(ca.as_slice()));
    }

    #[test]
    fn a_certificates_share_follows_its_issuers_key_and_spreads_issuers_evenly() {
        use super::revocation_share;
        // The key identifier decides, not the name's spelling; without one, the name does.
        for shares in [2, 8, 31] {
            assert_eq!(revocation_share(Some("ab01"), "CN=A", shares), revocation_share(Some("ab01"), "CN=a, O=other", shares));
            assert!(revocation_share(None, "CN=A", shares) < shares);
        }
        // Stable across releases and hosts: a fixed value, not a per-process hash.
        // (sha256("aki:ab01") and sha256("issuer:CN=A"), first 8 bytes big-endian, mod 1000003)
        assert_eq!(revocation_share(Some("ab01"), "", 1_000_003), 890_338);
        assert_eq!(revocation_share(None, "CN=A", 1_000_003), 521_503);
        let mut counts = [0usize; 8];
        for i in 0..4000 {
            counts[revocation_share(Some(&format!("{i:040x}")), "", 8) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (400..600).contains(c)), "{counts:?}");
        assert_eq!(revocation_share(Some("x"), "", 0), 0, "no shares means one");
    }
}

/// What a downloaded CRL says of itself, as `crl_cache` keeps it.
#[derive(Debug, Clone)]
pub struct CrlFacts<'a> {
    pub sha256: &'a str,
    pub this_update: UnixTime,
    pub next_update: Option<UnixTime>,
    pub size: usize,
    /// The issuer name, RFC 4514.
    pub issuer: Option<String>,
    /// The cRLNumber in decimal.
    pub number: Option<String>,
}
