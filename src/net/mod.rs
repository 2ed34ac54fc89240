//! Network setup shared by every module that talks to the world: the one rustls crypto provider
//! of the whole tree, and the Kubernetes connection (kubeconfig, in-cluster service account)
//! that sources and install targets both use.

pub mod kubernetes;

/// Installs ring as the process's rustls provider (one provider for the whole tree). Idempotent:
/// every client constructor calls it, so no entry point can forget it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client for webhooks (ring provider, no redirects: a receiver URL is exact).
pub fn webhook_client() -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("certvigil/", env!("CARGO_PKG_VERSION")))
        .build()
}
