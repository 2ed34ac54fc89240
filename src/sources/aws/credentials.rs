//! AWS credentials: the standard provider chain (environment, web identity, shared files,
//! EC2 instance metadata) and a cache that refreshes temporary credentials before they expire.
//!
//! Order and variables follow the AWS SDKs and CLI ("Standardized credential providers" in the
//! AWS SDKs and Tools Reference Guide): `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`; `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`)
//! through STS `AssumeRoleWithWebIdentity`; `~/.aws/credentials` and `~/.aws/config`
//! (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, `AWS_PROFILE`); IMDSv2 unless
//! `AWS_EC2_METADATA_DISABLED=true`. A profile named in the configuration acts like the CLI's
//! `--profile`: only the shared files are consulted, so environment keys cannot silently win.
//!
//! Secret keys and session tokens never appear in `Debug` output or error messages.

use super::http::{BodyError, xml_text};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Temporary credentials are refreshed this long before they expire (the SDKs use 5 minutes),
/// so a request signed just before expiry is not rejected in flight.
pub const REFRESH_MARGIN_SECS: i64 = 300;
/// IMDS answers within milliseconds on EC2; off EC2 the address is unreachable and the chain
/// must give up quickly.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
const IMDS_DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
const MAX_CREDENTIAL_RESPONSE: usize = 64 * 1024;

/// Why no credentials could be had. Never holds a secret key or a session token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// One variable of a pair is set without the other.
    #[error("{set} is set but {missing} is not")]
    HalfSet { set: &'static str, missing: &'static str },
    #[error("{}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "profile `{profile}` uses `{setting}`, which certvigil does not support; give the profile \
         aws_access_key_id and aws_secret_access_key, or use environment, web identity or instance credentials"
    )]
    UnsupportedProfile { profile: String, setting: &'static str },
    #[error("profile `{profile}` has no aws_access_key_id and aws_secret_access_key")]
    ProfileWithoutKeys { profile: String },
    #[error("profile `{profile}` is not in the shared credentials or config file")]
    NoProfile { profile: String },
    #[error("AWS_PROFILE `{profile}` is not in the shared credentials or config file")]
    NoEnvProfile { profile: String },
    #[error("STS response has no {field}")]
    StsMissing { field: &'static str },
    #[error("STS response has an unreadable Expiration")]
    StsExpiration,
    #[error("web identity token {path}: {source}")]
    WebIdentityToken {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// No answer from STS (`message`: the connection error and its causes).
    #[error("STS AssumeRoleWithWebIdentity for {role}: {message}")]
    StsTransport { role: String, message: String },
    #[error("STS AssumeRoleWithWebIdentity for {role}: HTTP {status} {code}: {message}")]
    StsStatus { role: String, status: u16, code: String, message: String },
    #[error("instance metadata credentials are not JSON: {0}")]
    ImdsJson(#[source] serde_json::Error),
    #[error("instance metadata credentials for role {role}: {code}")]
    ImdsCode { role: String, code: String },
    #[error("instance metadata credentials have no {field}")]
    ImdsMissing { field: &'static str },
    /// No answer from the instance metadata endpoint.
    #[error("instance metadata at {endpoint}: {message}")]
    ImdsTransport { endpoint: String, message: String },
    #[error("instance metadata at {endpoint}: token request answered HTTP {status}")]
    ImdsTokenStatus { endpoint: String, status: u16 },
    #[error("instance metadata {path}: HTTP {status}")]
    ImdsStatus { path: String, status: u16 },
    #[error("instance has no IAM role attached")]
    NoRole,
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(
        "no AWS credentials: none in the environment, no web identity, no profile `default` in the shared files, \
         and instance metadata is disabled (AWS_EC2_METADATA_DISABLED)"
    )]
    NoneImdsDisabled,
    /// Nothing in the chain, and instance metadata failed too (the source says how).
    #[error("no AWS credentials: none in the environment, no web identity, no profile `default` in the shared files; {0}")]
    NoneFound(#[source] Box<CredentialsError>),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Unix seconds; `None` for long-term keys.
    pub expires_at: Option<i64>,
    /// Which provider gave them (for messages): `environment`, `profile prod`, ….
    pub provider: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("expires_at", &self.expires_at)
            .field("provider", &self.provider)
            .finish()
    }
}

impl Credentials {
    /// Still usable at `now`, with the refresh margin.
    pub fn fresh_at(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|e| now < e - REFRESH_MARGIN_SECS)
    }
}

/// Environment lookup, injectable for tests.
pub type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + Send + Sync);

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn env_nonempty(env: Env<'_>, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

// ------------------------------------------------------------------------------------------
// Environment

/// `Ok(None)` when neither key variable is set; an error when only one is.
pub fn from_env(env: Env<'_>) -> Result<Option<Credentials>, CredentialsError> {
    match (env_nonempty(env, "AWS_ACCESS_KEY_ID"), env_nonempty(env, "AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id.trim().to_string(),
            secret_access_key: secret.trim().to_string(),
            session_token: env_nonempty(env, "AWS_SESSION_TOKEN").map(|t| t.trim().to_string()),
            expires_at: None,
            provider: "environment".into(),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(CredentialsError::HalfSet { set: "AWS_ACCESS_KEY_ID", missing: "AWS_SECRET_ACCESS_KEY" }),
        (None, Some(_)) => Err(CredentialsError::HalfSet { set: "AWS_SECRET_ACCESS_KEY", missing: "AWS_ACCESS_KEY_ID" }),
    }
}

// ------------------------------------------------------------------------------------------
// Shared files

/// Sections of an AWS INI file: `[name]` headers, `key = value` lines; `#`/`;` comments;
/// indented lines (nested service settings such as `s3 =` blocks) are skipped.
pub fn parse_ini(text: &str) -> Vec<(String, HashMap<String, String>)> {
    let mut out: Vec<(String, HashMap<String, String>)> = Vec::new();
    for raw in text.lines() {
        if raw.starts_with(' ') || raw.starts_with('\t') {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((name.split_whitespace().collect::<Vec<_>>().join(" "), HashMap::new()));
        } else if let (Some((k, v)), Some((_, section))) = (line.split_once('='), out.last_mut()) {
            section.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

fn home(env: Env<'_>) -> Option<PathBuf> {
    env_nonempty(env, "HOME").or_else(|| env_nonempty(env, "USERPROFILE")).map(PathBuf::from)
}

fn shared_path(env: Env<'_>, var: &str, default: &str) -> Option<PathBuf> {
    match env_nonempty(env, var) {
        Some(p) if p.starts_with("~/") => home(env).map(|h| h.join(&p[2..])),
        Some(p) => Some(PathBuf::from(p)),
        None => home(env).map(|h| h.join(".aws").join(default)),
    }
}

fn read_optional(path: &Option<PathBuf>) -> Result<Option<String>, CredentialsError> {
    let Some(p) = path else { return Ok(None) };
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CredentialsError::ReadFile { path: p.clone(), source }),
    }
}

/// Keys of `profile` in the credentials file (section `[name]`) over those of the config file
/// (`[profile name]`, or `[default]`).
pub fn profile_settings(credentials: Option<&str>, config: Option<&str>, profile: &str) -> Option<HashMap<String, String>> {
    let mut merged: Option<HashMap<String, String>> = None;
    if let Some(text) = config {
        for (name, keys) in parse_ini(text) {
            let matches = name == format!("profile {profile}") || (profile == "default" && name == "default");
            if matches {
                merged.get_or_insert_with(HashMap::new).extend(keys);
            }
        }
    }
    if let Some(text) = credentials {
        for (name, keys) in parse_ini(text) {
            if name == profile {
                merged.get_or_insert_with(HashMap::new).extend(keys);
            }
        }
    }
    merged
}

/// Credentials of a profile in the shared files. `Ok(None)`: the profile is not there.
pub fn from_shared_files(env: Env<'_>, profile: &str) -> Result<Option<Credentials>, CredentialsError> {
    let cred_path = shared_path(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let conf_path = shared_path(env, "AWS_CONFIG_FILE", "config");
    let creds = read_optional(&cred_path)?;
    let conf = read_optional(&conf_path)?;
    let Some(keys) = profile_settings(creds.as_deref(), conf.as_deref(), profile) else { return Ok(None) };
    let get = |k: &str| keys.get(k).filter(|v| !v.is_empty()).cloned();
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: get("aws_session_token"),
            expires_at: None,
            provider: format!("profile {profile}"),
        })),
        _ => {
            let unsupported = ["role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file"];
            match unsupported.iter().find(|k| keys.contains_key(**k)) {
                Some(k) => Err(CredentialsError::UnsupportedProfile { profile: profile.to_string(), setting: k }),
                None => Err(CredentialsError::ProfileWithoutKeys { profile: profile.to_string() }),
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Web identity (STS AssumeRoleWithWebIdentity, query protocol, unsigned)

fn parse_time(s: &str) -> Option<i64> {
    s.trim().parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// The `Credentials` element of an `AssumeRoleWithWebIdentityResponse`.
pub fn parse_sts_credentials(xml: &str, provider: &str) -> Result<Credentials, CredentialsError> {
    let field = |t: &'static str| xml_text(xml, t).ok_or(CredentialsError::StsMissing { field: t });
    Ok(Credentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
        expires_at: Some(parse_time(&field("Expiration")?).ok_or(CredentialsError::StsExpiration)?),
        provider: provider.into(),
    })
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", super::sigv4::uri_encode(k, false), super::sigv4::uri_encode(v, false)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn read_capped(resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    super::http::read_body(resp, limit).await
}

async fn from_web_identity(
    env: Env<'_>,
    http: &reqwest::Client,
    region: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, CredentialsError> {
    let Some(token_file) = env_nonempty(env, "AWS_WEB_IDENTITY_TOKEN_FILE") else { return Ok(None) };
    let role = env_nonempty(env, "AWS_ROLE_ARN")
        .ok_or(CredentialsError::HalfSet { set: "AWS_WEB_IDENTITY_TOKEN_FILE", missing: "AWS_ROLE_ARN" })?;
    let token =
        std::fs::read_to_string(&token_file).map_err(|source| CredentialsError::WebIdentityToken { path: token_file.clone(), source })?;
    let session = env_nonempty(env, "AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "certvigil".into());
    let endpoint =
        env_nonempty(env, "AWS_ENDPOINT_URL_STS").unwrap_or_else(|| format!("https://sts.{region}.{}", super::http::dns_suffix(region)));
    let body = form_encode(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", &role),
        ("RoleSessionName", &session),
        ("WebIdentityToken", token.trim()),
    ]);
    // The web identity token is the proof of identity: this call is not signed.
    let resp = http
        .post(endpoint.trim_end_matches('/').to_string() + "/")
        .header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| CredentialsError::StsTransport { role: role.clone(), message: super::http::transport_error(&e) })?;
    let status = resp.status();
    let text = String::from_utf8_lossy(&read_capped(resp, MAX_CREDENTIAL_RESPONSE).await?).into_owned();
    if !status.is_success() {
        let code = xml_text(&text, "Code").unwrap_or_default();
        let message = xml_text(&text, "Message").unwrap_or_default();
        return Err(CredentialsError::StsStatus { role, status: status.as_u16(), code, message });
    }
    parse_sts_credentials(&text, &format!("web identity {role}")).map(Some)
}

// ------------------------------------------------------------------------------------------
// Instance metadata (IMDSv2)

/// The role credentials document of IMDS (`/latest/meta-data/iam/security-credentials/<role>`).
pub fn parse_imds_credentials(json: &str, role: &str) -> Result<Credentials, CredentialsError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(CredentialsError::ImdsJson)?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    if let Some(code) = s("Code").filter(|c| c != "Success") {
        return Err(CredentialsError::ImdsCode { role: role.to_string(), code });
    }
    let missing = |field: &'static str| CredentialsError::ImdsMissing { field };
    Ok(Credentials {
        access_key_id: s("AccessKeyId").ok_or_else(|| missing("AccessKeyId"))?,
        secret_access_key: s("SecretAccessKey").ok_or_else(|| missing("SecretAccessKey"))?,
        session_token: s("Token"),
        expires_at: s("Expiration").as_deref().and_then(parse_time),
        provider: format!("instance role {role}"),
    })
}

async fn from_imds(env: Env<'_>, http: &reqwest::Client) -> Result<Credentials, CredentialsError> {
    let base = env_nonempty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| IMDS_DEFAULT_ENDPOINT.into());
    let base = base.trim_end_matches('/');
    let fail =
        |e: reqwest::Error| CredentialsError::ImdsTransport { endpoint: base.to_string(), message: super::http::transport_error(&e) };
    // IMDSv2: a session token from PUT /latest/api/token, then GETs carrying it.
    let token = http
        .put(format!("{base}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        .timeout(IMDS_TIMEOUT)
        .send()
        .await
        .map_err(fail)?;
    if !token.status().is_success() {
        return Err(CredentialsError::ImdsTokenStatus { endpoint: base.to_string(), status: token.status().as_u16() });
    }
    let token = String::from_utf8_lossy(&read_capped(token, MAX_CREDENTIAL_RESPONSE).await?).trim().to_string();
    let get = |path: String| {
        let req = http.get(format!("{base}{path}")).header("X-aws-ec2-metadata-token", token.clone()).timeout(IMDS_TIMEOUT);
        async move {
            let resp = req.send().await.map_err(fail)?;
            if !resp.status().is_success() {
                return Err(CredentialsError::ImdsStatus { status: resp.status().as_u16(), path });
            }
            Ok::<String, CredentialsError>(String::from_utf8_lossy(&read_capped(resp, MAX_CREDENTIAL_RESPONSE).await?).into_owned())
        }
    };
    let roles = get("/latest/meta-data/iam/security-credentials/".into()).await?;
    let role = roles.lines().map(str::trim).find(|l| !l.is_empty()).ok_or(CredentialsError::NoRole)?.to_string();
    let doc = get(format!("/latest/meta-data/iam/security-credentials/{role}")).await?;
    parse_imds_credentials(&doc, &role)
}

// ------------------------------------------------------------------------------------------
// The chain

/// Resolves credentials. `profile` is the configuration's `profile` (shared files only).
pub async fn resolve(
    env: Env<'_>,
    profile: Option<&str>,
    http: &reqwest::Client,
    region: &str,
    timeout: Duration,
) -> Result<Credentials, CredentialsError> {
    if let Some(p) = profile {
        return from_shared_files(env, p)?.ok_or_else(|| CredentialsError::NoProfile { profile: p.to_string() });
    }
    if let Some(c) = from_env(env)? {
        return Ok(c);
    }
    if let Some(c) = from_web_identity(env, http, region, timeout).await? {
        return Ok(c);
    }
    let env_profile = env_nonempty(env, "AWS_PROFILE");
    let name = env_profile.clone().unwrap_or_else(|| "default".into());
    match from_shared_files(env, &name)? {
        Some(c) => return Ok(c),
        // A profile asked for by name must exist; the implicit `default` may be absent.
        None if env_profile.is_some() => return Err(CredentialsError::NoEnvProfile { profile: name }),
        None => {}
    }
    if env_nonempty(env, "AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(CredentialsError::NoneImdsDisabled);
    }
    from_imds(env, http).await.map_err(|e| CredentialsError::NoneFound(Box::new(e)))
}

/// The current credentials, resolved on first use and again when temporary ones near expiry.
pub struct Cache {
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache { current: tokio::sync::Mutex::new(None) }
    }
}

impl Cache {
    /// The lock is held while resolving so concurrent requests wait for one resolution.
    pub async fn get(
        &self,
        now: i64,
        resolve: impl std::future::Future<Output = Result<Credentials, CredentialsError>>,
    ) -> Result<Credentials, CredentialsError> {
        let mut cur = self.current.lock().await;
        if let Some(c) = cur.as_ref().filter(|c| c.fresh_at(now)) {
            return Ok(c.clone());
        }
        let c = resolve.await?;
        *cur = Some(c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn client() -> reqwest::Client {
        crate::net::install_crypto_provider();
        reqwest::Client::new()
    }

    const CREDS: &str = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = secretdefault\n\n\
                         # a comment\n[prod]\naws_access_key_id=AKIDPROD\naws_secret_access_key=secretprod\naws_session_token = tokprod\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile staging]\naws_access_key_id = AKIDSTAGING\n\
                          aws_secret_access_key = secretstaging\ns3 =\n  max_concurrent_requests = 20\n\
                          [profile assumed]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = prod\n\
                          [profile prod]\naws_access_key_id = AKIDFROMCONFIG\naws_secret_access_key = fromconfig\n";

    fn home_with_files() -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        std::fs::write(home.path().join(".aws/credentials"), CREDS).unwrap();
        std::fs::write(home.path().join(".aws/config"), CONFIG).unwrap();
        home
    }

    #[test]
    fn environment_keys_with_a_session_token() {
        let env = env_of(&[("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_SESSION_TOKEN", "t")]);
        let c = from_env(&env).unwrap().unwrap();
        assert_eq!((c.access_key_id.as_str(), c.session_token.as_deref(), c.provider.as_str()), ("AKIDENV", Some("t"), "environment"));
        assert!(from_env(&env_of(&[])).unwrap().is_none());
        let half = from_env(&env_of(&[("AWS_ACCESS_KEY_ID", "AKIDENV")])).unwrap_err().to_string();
        assert!(half.contains("AWS_SECRET_ACCESS_KEY"), "{half}");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = Credentials {
            access_key_id: "AKIDX".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("session-secret".into()),
            expires_at: None,
            provider: "environment".into(),
        };
        let d = format!("{c:?}");
        assert!(d.contains("AKIDX") && !d.contains("very-secret") && !d.contains("session-secret"), "{d}");
    }

    #[test]
    fn shared_files_profiles_and_precedence() {
        let home = home_with_files();
        let h = home.path().to_str().unwrap().to_string();
        let env = env_of(&[("HOME", &h)]);
        let d = from_shared_files(&env, "default").unwrap().unwrap();
        assert_eq!((d.access_key_id.as_str(), d.secret_access_key.as_str()), ("AKIDDEFAULT", "secretdefault"));
        // The credentials file wins over the config file for the same profile.
        let p = from_shared_files(&env, "prod").unwrap().unwrap();
        assert_eq!((p.access_key_id.as_str(), p.session_token.as_deref()), ("AKIDPROD", Some("tokprod")));
        // `[profile staging]` in the config file; nested `s3 =` settings ignored.
        assert_eq!(from_shared_files(&env, "staging").unwrap().unwrap().access_key_id, "AKIDSTAGING");
        assert!(from_shared_files(&env, "missing").unwrap().is_none());
        let err = from_shared_files(&env, "assumed").unwrap_err().to_string();
        assert!(err.contains("role_arn"), "{err}");
    }

    #[test]
    fn file_locations_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let cred = dir.path().join("creds");
        std::fs::write(&cred, "[ci]\naws_access_key_id = AKIDCI\naws_secret_access_key = s\n").unwrap();
        let env = env_of(&[("AWS_SHARED_CREDENTIALS_FILE", cred.to_str().unwrap()), ("AWS_CONFIG_FILE", "/nonexistent/config")]);
        assert_eq!(from_shared_files(&env, "ci").unwrap().unwrap().access_key_id, "AKIDCI");
    }

    #[test]
    fn chain_precedence() {
        let home = home_with_files();
        let h = home.path().to_str().unwrap().to_string();
        let http = client();
        let run = |pairs: &[(&str, &str)], profile: Option<&str>| {
            let env = env_of(pairs);
            rt().block_on(resolve(&env, profile, &http, "us-east-1", Duration::from_secs(1))).map_err(|e| e.to_string())
        };
        // Environment first.
        let c =
            run(&[("HOME", &h), ("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_PROFILE", "prod")], None).unwrap();
        assert_eq!(c.access_key_id, "AKIDENV");
        // Then AWS_PROFILE in the shared files, then `default`.
        assert_eq!(run(&[("HOME", &h), ("AWS_PROFILE", "prod")], None).unwrap().access_key_id, "AKIDPROD");
        assert_eq!(run(&[("HOME", &h)], None).unwrap().access_key_id, "AKIDDEFAULT");
        // A configured profile beats the environment, like the CLI's --profile.
        let c = run(&[("HOME", &h), ("AWS_ACCESS_KEY_ID", "AKIDENV"), ("AWS_SECRET_ACCESS_KEY", "s")], Some("staging")).unwrap();
        assert_eq!(c.access_key_id, "AKIDSTAGING");
        assert!(run(&[("HOME", &h)], Some("nope")).unwrap_err().contains("`nope`"));
        assert!(run(&[("HOME", &h), ("AWS_PROFILE", "nope")], None).unwrap_err().contains("AWS_PROFILE `nope`"));
        // Nothing at all, metadata disabled: a clear error, and instance metadata is not asked
        // (the endpoint is a listener of this test that would see the connection).
        let empty = tempfile::tempdir().unwrap();
        let imds = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        imds.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", imds.local_addr().unwrap());
        let err = run(
            &[
                ("HOME", empty.path().to_str().unwrap()),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint),
            ],
            None,
        )
        .unwrap_err();
        assert!(err.contains("AWS_EC2_METADATA_DISABLED"), "{err}");
        assert_eq!(imds.accept().map(|_| ()).map_err(|e| e.kind()), Err(std::io::ErrorKind::WouldBlock), "instance metadata was asked");
        // Web identity without a role is an error, not a silent fall-through.
        let err = run(&[("HOME", &h), ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent")], None).unwrap_err();
        assert!(err.contains("AWS_ROLE_ARN"), "{err}");
    }

    #[test]
    fn unreachable_instance_metadata_fails_within_the_timeout() {
        // A loopback port with nothing listening stands in for an unreachable IMDS: refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let empty = tempfile::tempdir().unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let env = env_of(&[("HOME", empty.path().to_str().unwrap()), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]);
        let err = rt().block_on(resolve(&env, None, &client(), "us-east-1", Duration::from_secs(1))).unwrap_err().to_string();
        assert!(err.contains("instance metadata") && err.contains(&endpoint), "{err}");

        // A listener that takes the connection and never answers (as a filtered 169.254.169.254
        // does): the chain gives up at IMDS_TIMEOUT instead of waiting for ever. The lower bound
        // shows the timeout is what ended it; the upper one only catches a hang and is generous
        // because a loaded machine can stall the process for seconds.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", silent.local_addr().unwrap());
        let env = env_of(&[("HOME", empty.path().to_str().unwrap()), ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]);
        let start = std::time::Instant::now();
        let err = rt().block_on(resolve(&env, None, &client(), "us-east-1", Duration::from_secs(1))).unwrap_err().to_string();
        let took = start.elapsed();
        assert!(err.contains("instance metadata") && err.contains(&endpoint), "{err}");
        assert!(silent.accept().is_ok(), "the token request reached the listener");
        assert!(took >= IMDS_TIMEOUT, "gave up after {took:?}, before the timeout: {err}");
        assert!(took < Duration::from_secs(30), "{took:?}");
    }

    #[test]
    fn sts_and_imds_documents() {
        let xml = "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                   <AssumeRoleWithWebIdentityResult><Credentials><SessionToken>tok/+=</SessionToken>\
                   <SecretAccessKey>sec&amp;ret</SecretAccessKey><Expiration>2026-06-01T01:00:00Z</Expiration>\
                   <AccessKeyId>ASIAEXAMPLE</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult>\
                   </AssumeRoleWithWebIdentityResponse>";
        let c = parse_sts_credentials(xml, "web identity r").unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), c.secret_access_key.as_str(), c.session_token.as_deref()),
            ("ASIAEXAMPLE", "sec&ret", Some("tok/+="))
        );
        assert_eq!(c.expires_at, Some(1_780_275_600));
        assert!(c.fresh_at(1_780_275_600 - 301) && !c.fresh_at(1_780_275_600 - 299));
        let doc = r#"{"Code":"Success","LastUpdated":"2026-06-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS",
                      "SecretAccessKey":"s","Token":"t","Expiration":"2026-06-01T06:00:00Z"}"#;
        let c = parse_imds_credentials(doc, "web").unwrap();
        assert_eq!((c.access_key_id.as_str(), c.expires_at), ("ASIAIMDS", Some(1_780_293_600)));
    }

    #[test]
    fn messages_read_as_before() {
        assert_eq!(
            CredentialsError::NoneImdsDisabled.to_string(),
            "no AWS credentials: none in the environment, no web identity, no profile `default` in the shared files, \
             and instance metadata is disabled (AWS_EC2_METADATA_DISABLED)"
        );
        assert_eq!(
            CredentialsError::UnsupportedProfile { profile: "p".into(), setting: "role_arn" }.to_string(),
            "profile `p` uses `role_arn`, which certvigil does not support; give the profile aws_access_key_id and \
             aws_secret_access_key, or use environment, web identity or instance credentials"
        );
        assert_eq!(
            CredentialsError::HalfSet { set: "AWS_WEB_IDENTITY_TOKEN_FILE", missing: "AWS_ROLE_ARN" }.to_string(),
            "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not"
        );
    }

    #[test]
    fn the_cache_refreshes_before_expiry() {
        let cache = Cache::default();
        let mk = |id: &str, exp: i64| Credentials {
            access_key_id: id.into(),
            secret_access_key: "s".into(),
            session_token: None,
            expires_at: Some(exp),
            provider: "t".into(),
        };
        let rt = rt();
        let a = rt.block_on(cache.get(1000, async { Ok(mk("A", 5000)) })).unwrap();
        assert_eq!(a.access_key_id, "A");
        let b = rt.block_on(cache.get(2000, async { Ok(mk("B", 9000)) })).unwrap();
        assert_eq!(b.access_key_id, "A", "fresh credentials are reused");
        let c = rt.block_on(cache.get(4800, async { Ok(mk("C", 9000)) })).unwrap();
        assert_eq!(c.access_key_id, "C", "credentials within the refresh margin are replaced");
    }
}
