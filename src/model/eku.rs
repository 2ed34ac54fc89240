//! Extended key usage names (RFC 5280 §4.2.1.12): the names certvigil stores and the
//! normalisation of what operators write in filters and rules.

/// RFC 5280 §4.2.1.12 key purposes by their usual names.
pub fn eku_name(oid: &str) -> String {
    match oid {
        "1.3.6.1.5.5.7.3.1" => "serverAuth",
        "1.3.6.1.5.5.7.3.2" => "clientAuth",
        "1.3.6.1.5.5.7.3.3" => "codeSigning",
        "1.3.6.1.5.5.7.3.4" => "emailProtection",
        "1.3.6.1.5.5.7.3.8" => "timeStamping",
        "1.3.6.1.5.5.7.3.9" => "OCSPSigning",
        "2.5.29.37.0" => "anyExtendedKeyUsage",
        "1.3.6.1.4.1.311.10.3.3" => "msSGC",
        "1.3.6.1.4.1.11129.2.5.3" => "certificateTransparency",
        other => return other.to_string(),
    }
    .to_string()
}

/// Normalises an operator's EKU filter (`codesigning`, `code-signing`, `codeSigning`, an OID)
/// to the name stored in [`super::CertFacts::ext_key_usage`].
pub fn normalise_eku(input: &str) -> String {
    let folded: String = input.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect::<String>().to_ascii_lowercase();
    for name in ["serverAuth", "clientAuth", "codeSigning", "emailProtection", "timeStamping", "OCSPSigning", "anyExtendedKeyUsage"] {
        if name.to_ascii_lowercase() == folded {
            return name.to_string();
        }
    }
    match folded.as_str() {
        "server" | "tlsserver" => "serverAuth".into(),
        "client" | "tlsclient" => "clientAuth".into(),
        "ocsp" => "OCSPSigning".into(),
        "timestamp" => "timeStamping".into(),
        "email" | "smime" => "emailProtection".into(),
        _ => eku_name(input),
    }
}
