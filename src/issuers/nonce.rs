//! ACME's anti-replay nonces (RFC 8555 §6.5): which errors are a refused nonce, and how often a
//! request is repeated while the CA keeps refusing them. Every request of the client goes
//! through [`fresh_nonce`].

/// Rounds of requests made while the CA keeps refusing the nonce. Each round is up to three
/// attempts of the ACME client, each with the fresh nonce the `badNonce` error carries (RFC 8555
/// §6.5: the client SHOULD retry with it); the CA has done nothing with a request it answered
/// so, which makes every request safe to repeat. Ten rounds (at most 30 requests) outlast a CA
/// that refuses half of all nonces (Pebble refuses 5% by default).
pub(crate) const NONCE_ROUNDS: u32 = 10;

/// Whether the CA refused the request for its anti-replay nonce (RFC 8555 §6.5).
pub(crate) fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p) if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce"))
}

/// Evaluates `$call`, an awaited ACME request, again while the CA refuses its nonce, at most
/// [`NONCE_ROUNDS`] times; its last result is the result.
macro_rules! fresh_nonce {
    ($call:expr) => {{
        let mut round = 1;
        loop {
            match $call {
                Err(e) if $crate::issuers::nonce::is_bad_nonce(&e) && round < $crate::issuers::nonce::NONCE_ROUNDS => {
                    tracing::debug!(round, "the ACME server refused the nonce again: repeating the request");
                    round += 1;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use fresh_nonce;
