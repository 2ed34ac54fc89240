//! Revocation status for every inventoried certificate, from CRLs and OCSP, verified.
//!
//! For each certificate: find its issuer (in the inventory by AKI/SKI then name, confirmed by
//! the signature; else from the AIA caIssuers URL), then ask the preferred method and, when it
//! gives no answer, the other. Only a verified, current CRL or OCSP response gives `good` or
//! `revoked`; everything else is `unknown` with the reason — except where no answer can exist:
//! a self-signed anchor, a certificate naming no CRL distribution point and no OCSP URL, and a
//! short-lived one (≤ 10 days, `model::lifetime`) whose CA keeps no revocation information for
//! it are `not-applicable`. Decoding and verification are pure
//! (`crl`, `ocsp`, and `x509::verify`); this module and `fetch` do the I/O. Keep new formats on
//! the pure side: a decoder that takes bytes and `now` is fuzzed and tested against published
//! vectors without a server.

pub mod ari;
pub mod crl;
pub mod fetch;
pub mod ocsp;

use crate::config::{RevocationMethod, RevocationSpec};
use crate::model::{CertFacts, RevocationState, RevocationStatus, UnixTime, format_time, lifetime};
use crate::store::{CachedOcsp, CertRow, Store, StoreError};
use crate::x509::cert::raw_parts;
use crate::x509::verify;
use crl::{CertScope, Crl, CrlError, CrlIssuer, CrlVerdict, Judging};
use fetch::{Fetched, Http, PassHosts};
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Largest OCSP response or issuer certificate accepted.
const MAX_SMALL_BODY: usize = 256 * 1024;
/// How long a fetched issuer certificate (or the failure to fetch it) is reused.
const ISSUER_CACHE_SECS: i64 = 86_400;
/// Certificates read, checked and saved together: the unit of memory in a pass.
pub const BATCH: usize = 512;
/// Cache time for an OCSP answer without nextUpdate.
const OCSP_DEFAULT_CACHE: i64 = 3_600;
/// A host found down is not asked again for this long after the pass (doubling with each pass
/// that finds it down, up to [`HOST_BACKOFF_MAX`]).
const HOST_BACKOFF_MIN: i64 = 60;
const HOST_BACKOFF_MAX: i64 = 3_600;

/// Counters of work done, for tests, metrics and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub crl_downloads: AtomicU64,
    pub crl_not_modified: AtomicU64,
    pub crl_parses: AtomicU64,
    pub ocsp_requests: AtomicU64,
    pub ocsp_cache_hits: AtomicU64,
    pub issuer_fetches: AtomicU64,
    /// Certificate signatures verified to confirm an issuer (the CPU of a pass: a P-384
    /// verification costs about half a millisecond).
    pub issuer_signatures: AtomicU64,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The issuer of a certificate, as verification needs it.
#[derive(Debug, Clone)]
struct IssuerCert {
    der: Vec<u8>,
    facts: CertFacts,
}

type Shared<T> = Arc<OnceCell<Result<T, String>>>;

/// A revocation checker. Long-lived in the daemon: parsed CRLs stay in memory between passes,
/// so a CRL that answers 304 Not Modified costs no parse.
pub struct Checker {
    settings: RevocationSpec,
    http: Http,
    crl_dir: PathBuf,
    crl_memory: Mutex<HashMap<String, Arc<Crl>>>,
    /// Hosts found down in earlier passes: (asked again after, current backoff, reason).
    down_hosts: Mutex<HashMap<String, (UnixTime, i64, String)>>,
    /// (certificate, issuer) pairs whose signature verified, as 128 bits of a SHA-256 of both
    /// fingerprints: a certificate and its issuer never change, so a long-lived checker (the
    /// daemon) verifies each pair once, not at every pass. At most [`VERIFIED_MAX`] entries.
    verified: Mutex<std::collections::HashSet<u128>>,
    pub stats: Stats,
}

/// Remembered (certificate, issuer) verifications (16 bytes each: 16 MiB at most).
const VERIFIED_MAX: usize = 1 << 20;

fn pair_key(cert_fp: &str, issuer_fp: &str) -> u128 {
    use sha2::Digest;
    let d = sha2::Sha256::new().chain_update(cert_fp.as_bytes()).chain_update(b"/").chain_update(issuer_fp.as_bytes()).finalize();
    u128::from_be_bytes(d[..16].try_into().unwrap_or([0; 16]))
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").field("crl_dir", &self.crl_dir).finish()
    }
}

/// State of one pass: each CRL URL and issuer URL is fetched at most once per pass.
struct Pass {
    store: Arc<Mutex<Store>>,
    now: UnixTime,
    crls: Mutex<HashMap<String, Shared<Arc<Crl>>>>,
    issuers: Mutex<HashMap<String, Shared<Vec<u8>>>>,
    hosts: PassHosts,
    /// CRL URLs whose signature this pass verified and recorded (`crl_cache.verified_sha256`).
    verified_crls: Mutex<std::collections::HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn once<T>(map: &Mutex<HashMap<String, Shared<T>>>, key: &str) -> Shared<T> {
    lock(map).entry(key.to_string()).or_default().clone()
}

impl Checker {
    /// `state_dir` holds the CRL cache (`crls/`), beside the store.
    pub fn new(settings: RevocationSpec, state_dir: PathBuf) -> Result<Self, fetch::FetchError> {
        let http = Http::new(settings.timeout, settings.concurrency, settings.per_host, settings.hosts.clone())?;
        Ok(Checker {
            settings,
            http,
            crl_dir: state_dir.join("crls"),
            crl_memory: Mutex::new(HashMap::new()),
            down_hosts: Mutex::new(HashMap::new()),
            verified: Mutex::new(std::collections::HashSet::new()),
            stats: Stats::default(),
        })
    }

    /// The hosts a new pass starts with as down: those still backing off after earlier passes.
    fn hosts_for_pass(&self, now: UnixTime) -> PassHosts {
        self.http.new_pass();
        let down = lock(&self.down_hosts);
        PassHosts::with_down(down.iter().filter(|(_, (until, _, _))| *until > now).map(|(host, (until, _, reason))| {
            (host.clone(), format!("{reason}; down in an earlier pass, asked again after {}", format_time(*until)))
        }))
    }

    /// Records what a pass learnt of its hosts: one that answered is forgotten, one that went
    /// down backs off (a host still backing off keeps its time).
    fn remember_hosts(&self, hosts: &PassHosts, now: UnixTime) {
        let (down, up) = hosts.outcome();
        let mut known = lock(&self.down_hosts);
        for host in up {
            known.remove(&host);
        }
        for (host, reason) in down {
            match known.get(&host) {
                Some((until, _, _)) if *until > now => {}
                previous => {
                    let delay = previous.map_or(HOST_BACKOFF_MIN, |(_, d, _)| (d * 2).min(HOST_BACKOFF_MAX));
                    known.insert(host, (now + delay, delay, reason));
                }
            }
        }
    }

    /// Checks the given certificates (all current ones when `ids` is `None`) and saves the
    /// statuses. Returns each certificate with its new status (for callers that want them all;
    /// the daemon's pass uses [`Checker::check_each`], which holds one batch at a time).
    pub async fn check(
        self: &Arc<Self>,
        store: Arc<Mutex<Store>>,
        ids: Option<Vec<i64>>,
        now: UnixTime,
    ) -> Result<Vec<(CertRow, RevocationStatus)>, StoreError> {
        let mut out = Vec::new();
        self.check_each(store, ids, now, |batch| out.extend_from_slice(batch)).await?;
        Ok(out)
    }

    /// Checks the certificates in batches of [`BATCH`]: each batch is read from the store with
    /// its DER, checked (CRLs, issuers and hosts are shared by the whole pass), saved in one
    /// transaction and handed to `each`, so memory holds one batch, not the inventory. Returns
    /// the number checked.
    pub async fn check_each(
        self: &Arc<Self>,
        store: Arc<Mutex<Store>>,
        ids: Option<Vec<i64>>,
        now: UnixTime,
        mut each: impl FnMut(&[(CertRow, RevocationStatus)]),
    ) -> Result<usize, StoreError> {
        let ids = match ids {
            Some(ids) => ids,
            None => lock(&store).current_certificate_ids()?,
        };
        let pass = Arc::new(Pass {
            store: Arc::clone(&store),
            now,
            crls: Mutex::default(),
            issuers: Mutex::default(),
            hosts: self.hosts_for_pass(now),
            verified_crls: Mutex::default(),
        });
        let mut checked = 0;
        for chunk in ids.chunks(BATCH) {
            let certs = lock(&store).certificates_with_der(Some(chunk))?;
            let mut tasks = tokio::task::JoinSet::new();
            let mut results: Vec<Option<RevocationStatus>> = vec![None; certs.len()];
            let mut rows: Vec<CertRow> = Vec::with_capacity(certs.len());
            for (i, (cert, der)) in certs.into_iter().enumerate() {
                let (me, pass, c) = (Arc::clone(self), Arc::clone(&pass), cert.clone());
                rows.push(cert);
                tasks.spawn(async move { (i, me.check_one(&pass, &c, &der).await) });
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((i, status)) => results[i] = Some(status),
                    Err(e) => tracing::error!(error = %e, "revocation check task failed"),
                }
            }
            let out: Vec<(CertRow, RevocationStatus)> = rows
                .into_iter()
                .zip(results)
                .map(|(c, s)| (c, s.unwrap_or_else(|| RevocationStatus::unknown("internal error during the check", now))))
                .collect();
            let statuses: Vec<(i64, RevocationStatus)> = out.iter().map(|(c, s)| (c.id, s.clone())).collect();
            lock(&store).save_revocations(&statuses)?;
            checked += out.len();
            each(&out);
        }
        self.remember_hosts(&pass.hosts, now);
        Ok(checked)
    }

    async fn check_one(&self, pass: &Pass, cert: &CertRow, der: &[u8]) -> RevocationStatus {
        let f = &cert.facts;
        let short = lifetime::is_short_lived(f.not_before, f.not_after);
        let no_pointers = f.crl_urls.is_empty() && f.ocsp_urls.is_empty();
        // Nothing to ask: no distribution point, no responder, no configured CRL. A certificate
        // issued that way (Let's Encrypt's short-lived profile, ballot SC-063) cannot be
        // revoked in any way a relying party would see, so `unknown` would be a false alarm.
        if no_pointers && self.settings.crls.is_empty() && !f.self_issued {
            return not_applicable(short, f, None, pass.now);
        }
        let status = self.check_one_by_pointers(pass, cert, der).await;
        // A short-lived certificate (≤ 10 days, BR §1.6.1) whose CA keeps no revocation
        // information for it is not `unknown` either: its expiry is its revocation. An answer
        // (good or revoked) is still reported as given.
        if status.state == RevocationState::Unknown && (short || no_pointers) {
            return not_applicable(short, f, status.reason, pass.now);
        }
        status
    }

    async fn check_one_by_pointers(&self, pass: &Pass, cert: &CertRow, der: &[u8]) -> RevocationStatus {
        let now = pass.now;
        let parts = match raw_parts(der) {
            Ok(p) => p,
            Err(e) => return RevocationStatus::unknown(format!("certificate cannot be read: {e}"), now),
        };
        // Whether it signed itself is structure, not trust: any key ring can verify will do.
        if cert.facts.self_issued && verify::verify_cert_signed_by(der, parts.spki, verify::LOWEST_MIN_RSA_BITS).is_ok() {
            let mut s = RevocationStatus::unknown("self-signed trust anchor: nothing above it can revoke it", now);
            s.state = RevocationState::NotApplicable;
            return s;
        }
        let issuer = match self.find_issuer(pass, cert, der).await {
            Ok(i) => i,
            Err(reason) => return RevocationStatus::unknown(reason, now),
        };
        // `auto`: the CRL where there is a distribution point (one download answers for every
        // certificate under it), OCSP where there is none.
        let fetchable_dp = cert.facts.crl_urls.iter().any(|u| is_remote(u));
        let first = match self.settings.prefer {
            RevocationMethod::Auto if fetchable_dp => RevocationMethod::Crl,
            RevocationMethod::Auto => RevocationMethod::Ocsp,
            m => m,
        };
        let other = if first == RevocationMethod::Ocsp { RevocationMethod::Crl } else { RevocationMethod::Ocsp };
        let order = if self.settings.fallback { vec![first, other] } else { vec![first] };
        let mut reasons: Vec<String> = Vec::new();
        let mut stale = false;
        for method in order {
            let result = match method {
                RevocationMethod::Ocsp => self.check_ocsp(pass, cert, parts.serial, &issuer).await,
                RevocationMethod::Crl | RevocationMethod::Auto => self.check_crl(pass, cert, der, parts.serial, &issuer).await,
            };
            match result {
                Ok(mut status) => {
                    if !reasons.is_empty() {
                        let tried = format!("tried first: {}", reasons.join("; "));
                        status.detail = Some(match status.detail.take() {
                            Some(d) => format!("{d}; {tried}"),
                            None => tried,
                        });
                    }
                    return status;
                }
                Err(Miss { reason, stale: s }) => {
                    stale |= s;
                    reasons.push(reason);
                }
            }
        }
        let mut s = RevocationStatus::unknown(reasons.join("; "), now);
        s.stale = stale;
        s
    }

    /// The issuer: a certificate from the inventory or AIA whose key verifies this one.
    async fn find_issuer(&self, pass: &Pass, cert: &CertRow, der: &[u8]) -> Result<IssuerCert, String> {
        let candidates = lock(&pass.store)
            .issuer_candidates(cert.facts.aki.as_deref(), raw_parts(der).map_or(&[][..], |p| p.issuer))
            .map_err(|e| e.to_string())?;
        let min_bits = self.settings.min_issuer_rsa_bits;
        let mut weak: Option<String> = None;
        for (cand, cand_der) in candidates {
            if cand.facts.fingerprint == cert.facts.fingerprint {
                continue;
            }
            let Ok(cp) = raw_parts(&cand_der) else { continue };
            let key = pair_key(&cert.facts.fingerprint.0, &cand.facts.fingerprint.0);
            if lock(&self.verified).contains(&key) {
                return Ok(IssuerCert { der: cand_der, facts: cand.facts });
            }
            match self.verify_pair(der, cp.spki, min_bits, key) {
                Ok(()) => return Ok(IssuerCert { der: cand_der, facts: cand.facts }),
                Err(e @ verify::VerifyError::WeakKey { .. }) => weak = Some(format!("issuer `{}`: {e}", cand.facts.subject)),
                Err(_) => {}
            }
        }
        if let Some(w) = weak {
            return Err(w);
        }
        let mut why = format!("issuer `{}` not found in the inventory", cert.facts.issuer);
        if !self.settings.fetch_issuers {
            return Err(format!("{why} (fetch_issuers is off)"));
        }
        for url in cert.facts.ca_issuers_urls.iter().filter(|u| u.starts_with("http://") || u.starts_with("https://")) {
            let cell = once(&pass.issuers, url);
            let fetched = cell.get_or_init(|| self.fetch_issuer_bytes(pass, url)).await.clone();
            match fetched {
                Ok(bytes) => {
                    let parsed = crate::x509::parse_object(&bytes, &[]);
                    for found in parsed.certs {
                        let Ok(p) = raw_parts(&found.der) else { continue };
                        let key = pair_key(&cert.facts.fingerprint.0, &found.facts.fingerprint.0);
                        match self.verify_pair(der, p.spki, min_bits, key) {
                            Ok(()) => return Ok(IssuerCert { der: found.der, facts: found.facts }),
                            Err(e @ verify::VerifyError::WeakKey { .. }) => {
                                return Err(format!("issuer `{}` from {url}: {e}", found.facts.subject));
                            }
                            Err(_) => {}
                        }
                    }
                    why = format!("{why}; {url} does not hold a certificate that verifies it");
                }
                Err(e) => why = format!("{why}; AIA caIssuers {e}"),
            }
        }
        Err(why)
    }

    /// Verifies that `spki` signed the certificate `der`, and remembers it when it did.
    fn verify_pair(&self, der: &[u8], spki: &[u8], min_bits: u32, key: u128) -> Result<(), verify::VerifyError> {
        self.stats.issuer_signatures.fetch_add(1, Ordering::Relaxed);
        verify::verify_cert_signed_by(der, spki, min_bits)?;
        let mut verified = lock(&self.verified);
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(key);
        Ok(())
    }

    async fn fetch_issuer_bytes(&self, pass: &Pass, url: &str) -> Result<Vec<u8>, String> {
        let cached = lock(&pass.store).issuer_cache_get(url).map_err(|e| e.to_string())?;
        if let Some((der, at)) = cached.filter(|(_, at)| pass.now - at < ISSUER_CACHE_SECS) {
            return der.ok_or_else(|| format!("{url} could not be fetched at {}", format_time(at)));
        }
        self.stats.issuer_fetches.fetch_add(1, Ordering::Relaxed);
        let result = match self.http.get(url, MAX_SMALL_BODY, None, &pass.hosts).await {
            Ok(Fetched::Body { bytes, .. }) => Ok(bytes),
            Ok(Fetched::NotModified) => Err(format!("{url}: unexpected 304")),
            Err(e) => Err(e.to_string()),
        };
        let store = lock(&pass.store);
        let _ = match &result {
            Ok(b) => store.issuer_cache_put(url, Some(b), pass.now, None),
            Err(e) => store.issuer_cache_put(url, None, pass.now, Some(e)),
        };
        result
    }

    async fn check_crl(
        &self,
        pass: &Pass,
        cert: &CertRow,
        der: &[u8],
        serial: &[u8],
        issuer: &IssuerCert,
    ) -> Result<RevocationStatus, Miss> {
        let now = pass.now;
        let skew = self.settings.clock_skew;
        let min_bits = self.settings.min_issuer_rsa_bits;
        let ip = raw_parts(&issuer.der).map_err(|e| Miss::new(format!("issuer certificate: {e}")))?;
        let ski = issuer.facts.ski.as_ref().and_then(|s| hex::decode(s).ok());
        let dps = crl::cert_distribution_points(der).map_err(|e| Miss::new(format!("cRLDistributionPoints: {e}")))?;
        let mut reasons = Vec::new();
        let mut stale = false;
        // Distribution points first (those naming a cRLIssuer point at an indirect CRL, which
        // is not supported: said so, not fetched), then the configured CRLs.
        let mut urls: Vec<(String, bool)> = Vec::new();
        for dp in &dps {
            if dp.crl_issuer {
                reasons.push(format!(
                    "distribution point {} names a cRLIssuer (an indirect CRL), which is not supported",
                    dp.uris().join(", ")
                ));
                continue;
            }
            urls.extend(dp.uris().into_iter().map(|u| (u, true)));
        }
        urls.extend(self.settings.crls.iter().map(|u| (u.clone(), false)));
        let judging = Judging { now, clock_skew: skew, stale_grace: self.settings.stale_grace, min_rsa_bits: min_bits };
        let crl_issuer = CrlIssuer { subject_der: ip.subject, spki_der: ip.spki, ski: ski.as_deref(), key_usage: &issuer.facts.key_usage };
        for (url, from_dp) in &urls {
            let (url, from_dp) = (url.as_str(), *from_dp);
            if url.starts_with("ldap") {
                reasons.push(format!("CRL {url}: LDAP distribution points are not fetched"));
                continue;
            }
            // Local files are read only when the configuration names them, never because a
            // certificate says so.
            if from_dp && !is_remote(url) {
                reasons.push(format!("CRL {url}: only http and https distribution points are fetched"));
                continue;
            }
            let base = match self.crl(pass, url).await {
                Ok(c) => c,
                Err(e) => {
                    if from_dp {
                        reasons.push(format!("CRL {e}"));
                    }
                    continue;
                }
            };
            // A configured CRL applies to the certificates of its issuer and scope only;
            // one for another issuer or partition is skipped without a word.
            if !from_dp && !base.issued_by(ip.subject) {
                continue;
            }
            if !base.issued_by(ip.subject) {
                reasons.push(format!("CRL {url} is for another issuer"));
                continue;
            }
            let judged =
                base.judge_base(&crl_issuer, &CertScope { is_ca: cert.facts.is_ca, dps: &dps, via: from_dp.then_some(url) }, &judging);
            // The signature is checked first: a CRL judged current or stale verified.
            if matches!(judged, Ok(_) | Err(CrlError::Stale(_))) {
                self.crl_verified(pass, url, &base);
            }
            let coverage = match judged {
                Ok(c) => c,
                Err(CrlError::OutOfScope(_)) if !from_dp => continue,
                Err(e) => {
                    stale |= matches!(e, CrlError::Stale(_));
                    reasons.push(format!("CRL {url}: {e}"));
                    continue;
                }
            };
            let past_next = base.next_update.is_some_and(|n| now > n + skew);
            // Delta CRLs named by the base (Freshest CRL, RFC 5280 §5.2.6).
            let mut delta: Option<Arc<Crl>> = None;
            let mut notes = Vec::new();
            for durl in &base.freshest {
                if !is_remote(durl) {
                    notes.push(format!("delta CRL {durl}: only http and https locations are fetched"));
                    continue;
                }
                match self.crl(pass, durl).await {
                    Ok(d) if !d.issued_by(ip.subject) => notes.push(format!("{durl} is not a delta CRL for this issuer")),
                    Ok(d) => match d.judge_delta(&base, &crl_issuer, &judging) {
                        Ok(()) => {
                            self.crl_verified(pass, durl, &d);
                            delta = Some(d);
                            break;
                        }
                        Err(e) => notes.push(format!("delta CRL {durl}: {e}")),
                    },
                    Err(e) => notes.push(format!("delta CRL {e}")),
                }
            }
            let verdict = crl::answer(&base, delta.as_deref(), serial, coverage).map_err(|e| Miss::new(format!("CRL {url}: {e}")))?;
            if let CrlVerdict::NotCovered(mask) = verdict {
                reasons
                    .push(format!("CRL {url} covers only some revocation reasons ({}) and does not list it", crl::describe_reasons(mask)));
                continue;
            }
            if past_next {
                notes.push(format!(
                    "CRL past nextUpdate {} (within the stale grace)",
                    base.next_update.map(format_time).unwrap_or_default()
                ));
            }
            let method = if delta.is_some() { "crl+delta" } else { "crl" };
            let next_update = match (base.next_update, delta.as_ref().and_then(|d| d.next_update)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(d) = &delta {
                notes.push(format!("delta CRL sha256 {}", d.sha256));
            }
            let mut status = RevocationStatus {
                state: RevocationState::Good,
                reason: None,
                revoked_at: None,
                invalidity_date: None,
                method: method.into(),
                source_url: Some(url.to_string()),
                evidence_sha256: Some(base.sha256.clone()),
                checked_at: now,
                next_update,
                stale: past_next,
                detail: (!notes.is_empty()).then(|| notes.join("; ")),
            };
            match verdict {
                CrlVerdict::NotListed | CrlVerdict::NotCovered(_) => {}
                CrlVerdict::Released => {
                    status.detail = Some(
                        ["released from hold (removeFromCRL in the delta CRL)".to_string()]
                            .into_iter()
                            .chain(status.detail.take())
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                }
                CrlVerdict::Listed(e) => {
                    status.state = RevocationState::Revoked;
                    status.reason = Some(e.reason.map(|r| r.as_str()).unwrap_or("unspecified").into());
                    status.revoked_at = Some(e.revoked_at);
                    status.invalidity_date = e.invalidity_date;
                }
            }
            return Ok(status);
        }
        if reasons.is_empty() {
            reasons.push("no CRL distribution point".into());
        }
        Err(Miss { reason: reasons.join("; "), stale })
    }

    /// One CRL per URL per pass: downloaded with a conditional GET, parsed only when its bytes
    /// changed since the copy held in memory.
    async fn crl(&self, pass: &Pass, url: &str) -> Result<Arc<Crl>, String> {
        let cell = once(&pass.crls, url);
        cell.get_or_init(|| self.load_crl(pass, url)).await.clone()
    }

    async fn load_crl(&self, pass: &Pass, url: &str) -> Result<Arc<Crl>, String> {
        let max = self.settings.max_crl_size;
        let remote = is_remote(url);
        let path = self.crl_dir.join(format!("{}.der", hex::encode(sha2::Sha256::digest(url.as_bytes()))));
        let memory = lock(&self.crl_memory).get(url).cloned();
        let cache = if remote { lock(&pass.store).crl_cache_get(url).map_err(|e| e.to_string())? } else { None };
        let have_copy = memory.is_some() || path.exists();
        let conditional = cache.as_ref().filter(|_| have_copy).map(|c| (c.etag.as_deref(), c.last_modified.as_deref()));
        let fetched = self.http.get(url, max, conditional, &pass.hosts).await;
        let (bytes, etag, last_modified) = match fetched {
            Ok(Fetched::NotModified) => {
                self.stats.crl_not_modified.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = memory.as_ref().filter(|m| cache.as_ref().is_some_and(|c| c.sha256 == m.sha256)).cloned() {
                    return Ok(m);
                }
                let bytes = std::fs::read(&path).map_err(|e| format!("{url}: 304 Not Modified but the cached copy is unreadable: {e}"))?;
                (bytes, None, None)
            }
            Ok(Fetched::Body { bytes, etag, last_modified }) => {
                self.stats.crl_downloads.fetch_add(1, Ordering::Relaxed);
                (bytes, etag, last_modified)
            }
            Err(e) => {
                // Unreachable now, but a cached CRL is still evidence until its nextUpdate.
                if let Some(m) = memory {
                    tracing::warn!(url, error = %e, "CRL download failed; using the cached copy");
                    return Ok(m);
                }
                return Err(e.to_string());
            }
        };
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        if let Some(m) = memory.filter(|m| m.sha256 == sha) {
            return Ok(m);
        }
        let size = bytes.len();
        self.stats.crl_parses.fetch_add(1, Ordering::Relaxed);
        let parsed = tokio::task::block_in_place(|| Crl::parse(bytes, max)).map_err(|e| format!("{url}: {e}"))?;
        let parsed = Arc::new(parsed);
        // The row is rewritten whenever the bytes change (not only with validators to keep), so
        // its thisUpdate, nextUpdate and number describe the CRL in use.
        if remote
            && (etag.is_some() || last_modified.is_some() || !path.exists() || cache.as_ref().is_none_or(|c| c.sha256 != sha))
            && let Err(e) = self.save_crl_copy(&path, url, &parsed, etag.as_deref(), last_modified.as_deref(), size, pass)
        {
            tracing::warn!(url, error = %e, "could not cache the CRL");
        }
        lock(&self.crl_memory).insert(url.to_string(), Arc::clone(&parsed));
        Ok(parsed)
    }

    /// Records once per pass that `url`'s CRL (these bytes) verified against its issuer, for
    /// the `x509_crl_*` metrics; a failure to record is logged, never the check's outcome.
    fn crl_verified(&self, pass: &Pass, url: &str, crl: &Crl) {
        if !is_remote(url) || !lock(&pass.verified_crls).insert(url.to_string()) {
            return;
        }
        if let Err(e) = lock(&pass.store).crl_verified(url, &crl.sha256, pass.now) {
            tracing::warn!(url, error = %e, "could not record the CRL as verified");
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn save_crl_copy(
        &self,
        path: &std::path::Path,
        url: &str,
        crl: &Crl,
        etag: Option<&str>,
        lm: Option<&str>,
        size: usize,
        pass: &Pass,
    ) -> Result<(), String> {
        std::fs::create_dir_all(&self.crl_dir).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, crl.der()).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| e.to_string())?;
        lock(&pass.store)
            .crl_cache_put(
                url,
                etag,
                lm,
                pass.now,
                &crate::store::CrlFacts {
                    sha256: &crl.sha256,
                    this_update: crl.this_update,
                    next_update: crl.next_update,
                    size,
                    issuer: crate::x509::name::rfc4514(crl.issuer_der()).ok(),
                    number: crl.crl_number.as_deref().map(crate::model::exporter::decimal),
                },
            )
            .map_err(|e| e.to_string())
    }

    async fn check_ocsp(&self, pass: &Pass, cert: &CertRow, serial: &[u8], issuer: &IssuerCert) -> Result<RevocationStatus, Miss> {
        let now = pass.now;
        let urls: Vec<&String> = cert.facts.ocsp_urls.iter().filter(|u| u.starts_with("http://") || u.starts_with("https://")).collect();
        if urls.is_empty() {
            return Err(Miss::new("no OCSP responder URL"));
        }
        let cached = lock(&pass.store).ocsp_cached(cert.id, now).map_err(|e| Miss::new(e.to_string()))?;
        if let Some(c) = cached {
            self.stats.ocsp_cache_hits.fetch_add(1, Ordering::Relaxed);
            return ocsp_status(&c, now, true);
        }
        let ip = raw_parts(&issuer.der).map_err(|e| Miss::new(format!("issuer certificate: {e}")))?;
        let iss = ocsp::Issuer { subject_der: ip.subject, spki_der: ip.spki };
        let id = ocsp::cert_id(&iss, serial).map_err(|e| Miss::new(e.to_string()))?;
        let nonce: Option<[u8; 16]> = if self.settings.ocsp_nonce {
            let mut n = [0u8; 16];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut n)
                .map_err(|_| Miss::new("no randomness for the OCSP nonce"))?;
            Some(n)
        } else {
            None
        };
        let request = ocsp::build_request(&id, nonce.as_ref().map(|n| &n[..]));
        let mut reasons = Vec::new();
        for url in urls {
            self.stats.ocsp_requests.fetch_add(1, Ordering::Relaxed);
            let body = match ocsp::get_url(url, &request) {
                Some(get) => match self.http.get(&get, MAX_SMALL_BODY, None, &pass.hosts).await {
                    Ok(Fetched::Body { bytes, .. }) => Ok(bytes),
                    Ok(Fetched::NotModified) => Err(format!("{url}: unexpected 304")),
                    Err(e) => Err(e.to_string()),
                },
                None => self
                    .http
                    .post(url, request.clone(), "application/ocsp-request", MAX_SMALL_BODY, &pass.hosts)
                    .await
                    .map_err(|e| e.to_string()),
            };
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    reasons.push(format!("OCSP {e}"));
                    continue;
                }
            };
            let nonce = nonce.as_ref().map(|n| &n[..]);
            let answer =
                match ocsp::verify_response(&body, &id, &iss, nonce, now, self.settings.clock_skew, self.settings.min_issuer_rsa_bits) {
                    Ok(a) => a,
                    Err(e) => {
                        reasons.push(format!("OCSP {url}: {e}"));
                        continue;
                    }
                };
            let sha = hex::encode(sha2::Sha256::digest(&body));
            let (status, revoked_at, reason) = match &answer.status {
                ocsp::CertStatus::Good => ("good", None, None),
                ocsp::CertStatus::Revoked { at, reason } => {
                    ("revoked", Some(*at), Some(reason.map(|r| r.as_str()).unwrap_or("unspecified").to_string()))
                }
                ocsp::CertStatus::Unknown => ("unknown", None, None),
            };
            let cache_until = answer
                .next_update
                .unwrap_or((now + OCSP_DEFAULT_CACHE).min(answer.this_update + ocsp::NO_NEXT_UPDATE_LIFETIME))
                .min(now + self.settings.ocsp_max_cache);
            let cached = CachedOcsp {
                responder: url.clone(),
                status: status.into(),
                revoked_at,
                reason,
                this_update: answer.this_update,
                next_update: answer.next_update,
                cache_until,
                sha256: sha,
            };
            if let Err(e) = lock(&pass.store).ocsp_cache_put(cert.id, &cached, &body) {
                tracing::warn!(cert_id = cert.id, error = %e, "could not cache the OCSP answer");
            }
            match ocsp_status(&cached, now, false) {
                Ok(mut s) => {
                    if !answer.notes.is_empty() {
                        s.detail = Some(answer.notes.join("; "));
                    }
                    return Ok(s);
                }
                Err(m) => reasons.push(m.reason),
            }
        }
        Err(Miss { reason: reasons.join("; "), stale: false })
    }
}

/// `not-applicable` for a short-lived certificate or one that names nowhere to check it, saying
/// which and, in `detail`, what was tried.
fn not_applicable(short: bool, f: &CertFacts, tried: Option<String>, now: UnixTime) -> RevocationStatus {
    let life = lifetime::lifetime_words(lifetime::validity_period(f.not_before, f.not_after));
    let why = match (short, f.crl_urls.is_empty() && f.ocsp_urls.is_empty()) {
        (true, true) => format!("short-lived ({life}) with no CRL distribution point and no OCSP URL: its expiry is its revocation"),
        (true, false) => format!("short-lived ({life}): its expiry is its revocation; the CA need not keep revocation information"),
        (false, _) => "carries no CRL distribution point and no OCSP URL: nothing can report it revoked".to_string(),
    };
    let mut s = RevocationStatus::unknown(why, now);
    s.state = RevocationState::NotApplicable;
    s.detail = tried.map(|t| format!("tried: {t}"));
    s
}

fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Why a method gave no answer.
#[derive(Debug)]
struct Miss {
    reason: String,
    stale: bool,
}

impl Miss {
    fn new(reason: impl Into<String>) -> Self {
        Miss { reason: reason.into(), stale: false }
    }
}

fn ocsp_status(c: &CachedOcsp, now: UnixTime, from_cache: bool) -> Result<RevocationStatus, Miss> {
    let state = match c.status.as_str() {
        "good" => RevocationState::Good,
        "revoked" => RevocationState::Revoked,
        _ => return Err(Miss::new(format!("OCSP {}: the responder does not know this certificate", c.responder))),
    };
    Ok(RevocationStatus {
        state,
        reason: c.reason.clone(),
        revoked_at: c.revoked_at,
        invalidity_date: None,
        method: "ocsp".into(),
        source_url: Some(c.responder.clone()),
        evidence_sha256: Some(c.sha256.clone()),
        checked_at: now,
        next_update: c.next_update,
        stale: false,
        detail: from_cache
            .then(|| format!("cached answer (thisUpdate {}), reused until {}", format_time(c.this_update), format_time(c.cache_until))),
    })
}
