//! How certvigil reaches a Kubernetes API server: one function, [`connect`], used by the
//! `kind: kubernetes` source and by the Secret install target.
//!
//! Credentials come from a kubeconfig context (bearer token, token file, client certificate,
//! exec credential plugin, as kube reads them) or from the pod's service account (in-cluster).
//! Which one is used:
//! - `in_cluster: Some(true)`: the service account only;
//! - `in_cluster: Some(false)`: the kubeconfig only (never the service account);
//! - `in_cluster: None`: the kubeconfig (`kubeconfig`, else `$KUBECONFIG`, else
//!   `~/.kube/config`); when there is none at all, the service account. A kubeconfig that exists
//!   but cannot be read is an error, never a reason to fall back.
//!
//! A context whose cluster sets `insecure-skip-tls-verify: true` would send its credentials to
//! whoever answers: it is refused unless the caller explicitly allows it
//! (`allow_insecure_skip_tls_verify`), and then warned about at every connection.
//!
//! Errors never carry credentials: kube's error for a failed exec plugin includes the plugin's
//! whole output (and its environment), which may hold a token, so [`describe`] renders kube
//! errors without it.

use kube::config::{KubeConfigOptions, Kubeconfig};

pub use crate::config::sources::kubernetes::Access;

/// A client and the name locations use for its cluster (the context, or `in-cluster`).
pub struct Connection {
    pub client: kube::Client,
    pub context: String,
}

/// The context name used for the in-cluster service account.
pub const IN_CLUSTER: &str = "in-cluster";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read the kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("no kubeconfig ($KUBECONFIG, ~/.kube/config) and `in_cluster: false`: nowhere to take credentials from")]
    NoKubeconfig,
    #[error("no kubeconfig ($KUBECONFIG, ~/.kube/config) and not running in a pod: {message}")]
    Nowhere { message: String },
    #[error("`in_cluster: true` but not running in a pod with a service account: {message}")]
    InCluster { message: String },
    #[error("the kubeconfig names no current context: set `context`")]
    NoCurrentContext,
    #[error("the kubeconfig has no context `{context}` (it has: {known})")]
    UnknownContext { context: String, known: String },
    #[error("kubeconfig context `{context}`: {message}")]
    Context { context: String, message: String },
    #[error(
        "kubeconfig context `{context}` sets insecure-skip-tls-verify: the API server's certificate would not be checked and the \
         credentials would go to whoever answers; refused (set `allow_insecure_skip_tls_verify: true` to accept that risk)"
    )]
    Insecure { context: String },
    #[error("kubeconfig context `{context}`: the exec credential plugin `{command}` failed: {message}")]
    Exec { context: String, command: String, message: String },
    #[error("cannot build the Kubernetes client for context `{context}`: {message}")]
    Client { context: String, message: String },
}

impl AccessError {
    /// The context the error is about, once one was chosen.
    pub fn context(&self) -> Option<&str> {
        match self {
            AccessError::UnknownContext { context, .. }
            | AccessError::Context { context, .. }
            | AccessError::Insecure { context }
            | AccessError::Exec { context, .. }
            | AccessError::Client { context, .. } => Some(context),
            AccessError::InCluster { .. } => Some(IN_CLUSTER),
            _ => None,
        }
    }
}

/// Connects as `access` says. Reads files and runs exec plugins; makes no API request.
pub async fn connect(access: &Access) -> Result<Connection, AccessError> {
    let (mut config, context, exec) = match access.in_cluster {
        Some(true) => {
            let config = kube::Config::incluster().map_err(|e| AccessError::InCluster { message: e.to_string() })?;
            (config, IN_CLUSTER.to_string(), None)
        }
        Some(false) => match read_kubeconfig(access)? {
            Some(kc) => from_kubeconfig(kc, access).await?,
            None => return Err(AccessError::NoKubeconfig),
        },
        None => match read_kubeconfig(access)? {
            Some(kc) => from_kubeconfig(kc, access).await?,
            None => {
                let config = kube::Config::incluster().map_err(|e| AccessError::Nowhere { message: e.to_string() })?;
                (config, IN_CLUSTER.to_string(), None)
            }
        },
    };
    if config.accept_invalid_certs {
        if !access.allow_insecure_skip_tls_verify {
            return Err(AccessError::Insecure { context });
        }
        tracing::warn!(
            context = %context,
            server = %config.cluster_url,
            "insecure-skip-tls-verify: the API server's certificate is NOT checked (allowed by allow_insecure_skip_tls_verify); \
             anyone on the path can read the credentials and forge the answers"
        );
    }
    config.connect_timeout = Some(access.timeout);
    config.read_timeout = Some(access.timeout);
    config.write_timeout = Some(access.timeout);
    // An exec plugin runs here, while the client's authentication is set up.
    let client = kube::Client::try_from(config).map_err(|e| match (&e, exec) {
        (kube::Error::Auth(_), Some(command)) => AccessError::Exec { context: context.clone(), command, message: describe(&e) },
        _ => AccessError::Client { context: context.clone(), message: describe(&e) },
    })?;
    Ok(Connection { client, context })
}

/// The kubeconfig named, or the default one; `Ok(None)` when there is none at all.
fn read_kubeconfig(access: &Access) -> Result<Option<Kubeconfig>, AccessError> {
    match &access.kubeconfig {
        Some(p) => Kubeconfig::read_from(p)
            .map(Some)
            .map_err(|e| AccessError::Kubeconfig { path: p.display().to_string(), message: e.to_string() }),
        None => match Kubeconfig::read() {
            Ok(kc) => Ok(Some(kc)),
            Err(e) if default_kubeconfig_exists() => {
                Err(AccessError::Kubeconfig { path: "($KUBECONFIG or ~/.kube/config)".into(), message: e.to_string() })
            }
            Err(_) => Ok(None),
        },
    }
}

/// The config of the chosen context, its name, and its exec plugin's command if it has one.
async fn from_kubeconfig(kc: Kubeconfig, access: &Access) -> Result<(kube::Config, String, Option<String>), AccessError> {
    let context = pick_context(&kc, access.context.as_deref())?;
    let exec = exec_command(&kc, &context);
    let options = KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| AccessError::Context { context: context.clone(), message: e.to_string() })?;
    Ok((config, context, exec))
}

/// The context to use: `wanted`, else the current one; it must exist.
fn pick_context(kc: &Kubeconfig, wanted: Option<&str>) -> Result<String, AccessError> {
    let context = match wanted.map(str::to_string).or_else(|| kc.current_context.clone().filter(|c| !c.is_empty())) {
        Some(c) => c,
        None => return Err(AccessError::NoCurrentContext),
    };
    if kc.contexts.iter().any(|c| c.name == context) {
        return Ok(context);
    }
    let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
    Err(AccessError::UnknownContext { context, known })
}

/// The command of the exec credential plugin of `context`'s user, if it has one.
fn exec_command(kc: &Kubeconfig, context: &str) -> Option<String> {
    let user = kc.contexts.iter().find(|c| c.name == context)?.context.as_ref()?.user.clone()?;
    let info = kc.auth_infos.iter().find(|a| a.name == user)?.auth_info.as_ref()?;
    info.exec.as_ref().map(|e| e.command.clone().unwrap_or_default())
}

/// Whether `$KUBECONFIG` is set or `~/.kube/config` exists.
fn default_kubeconfig_exists() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("HOME").is_some_and(|h| std::path::Path::new(&h).join(".kube/config").exists())
}

/// A kube error as an operator reads it: an API `Status` as `reason (code): message`, anything
/// else with its chain of causes (a TLS failure is only named deep in it). Exec plugin
/// failures are shown without the plugin's output or environment (kube's own message has both).
pub fn describe(e: &kube::Error) -> String {
    use kube::client::AuthError;
    match e {
        kube::Error::Api(s) => format!("{} ({}): {}", s.reason, s.code, s.message),
        kube::Error::Auth(AuthError::AuthExecRun { out, .. }) => {
            format!("it exited with {} (its output is not shown: it may hold credentials)", out.status)
        }
        kube::Error::Auth(AuthError::AuthExecParse(_)) => {
            "its output is not an ExecCredential (the output is not shown: it may hold credentials)".into()
        }
        other => {
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                let s = c.to_string();
                if !text.contains(&s) {
                    text.push_str(": ");
                    text.push_str(&s);
                }
                cause = c.source();
            }
            if text.contains("invalid peer certificate") {
                // rustls's words; say what they mean for a kubeconfig.
                text.push_str(
                    " (TLS: the API server's certificate does not verify against the certificate authority of the kubeconfig \
                     (`certificate-authority`/`-data`) or of the service account)",
                );
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).expect("kubeconfig")
    }

    const TWO: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: ca\n  cluster:\n    server: https://a.example:6443\n\
        - name: cb\n  cluster:\n    server: https://b.example:6443\nusers:\n- name: ua\n  user:\n    token: t\n\
        - name: ub\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /usr/bin/get-token\n      interactiveMode: Never\n\
        contexts:\n- name: a\n  context:\n    cluster: ca\n    user: ua\n- name: b\n  context:\n    cluster: cb\n    user: ub\n\
        current-context: a\n";

    #[test]
    fn the_context_is_the_named_one_else_the_current_one_and_must_exist() {
        let kc = kubeconfig(TWO);
        assert_eq!(pick_context(&kc, None), Ok("a".into()));
        assert_eq!(pick_context(&kc, Some("b")), Ok("b".into()));
        assert_eq!(pick_context(&kc, Some("c")), Err(AccessError::UnknownContext { context: "c".into(), known: "a, b".into() }));
        let none = kubeconfig(&TWO.replace("current-context: a\n", ""));
        assert_eq!(pick_context(&none, None), Err(AccessError::NoCurrentContext));
        let message = AccessError::UnknownContext { context: "c".into(), known: "a, b".into() }.to_string();
        assert_eq!(message, "the kubeconfig has no context `c` (it has: a, b)");
    }

    #[test]
    fn the_exec_plugin_of_a_context_is_found_through_its_user() {
        let kc = kubeconfig(TWO);
        assert_eq!(exec_command(&kc, "b").as_deref(), Some("/usr/bin/get-token"));
        assert_eq!(exec_command(&kc, "a"), None);
        assert_eq!(exec_command(&kc, "nope"), None);
    }

    #[test]
    fn a_failed_exec_plugin_is_described_without_its_output() {
        use std::os::unix::process::ExitStatusExt;
        let out = std::process::Output {
            status: std::process::ExitStatus::from_raw(3 << 8),
            stdout: br#"{"status":{"token":"s3cr3t-token"}}"#.to_vec(),
            stderr: b"s3cr3t-token".to_vec(),
        };
        let e = kube::Error::Auth(kube::client::AuthError::AuthExecRun { cmd: "KEY=s3cr3t-token get-token".into(), out: Box::new(out) });
        assert!(e.to_string().contains("s3cr3t-token"), "kube's own message holds the output");
        let text = describe(&e);
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
    }

    #[test]
    fn api_errors_are_reason_code_and_message() {
        let status = kube::core::Status::failure("Unauthorized", "Unauthorized").with_code(401);
        assert_eq!(describe(&kube::Error::Api(status.boxed())), "Unauthorized (401): Unauthorized");
    }
}
