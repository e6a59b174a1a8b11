//! TLS clients: rustls with the `ring` provider (it cross-compiles cleanly), the server
//! verified against a configured CA file or the system roots. The head-office link adds
//! optional client certificates; the artifact server of model updates uses the roots alone.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// The roots a server must chain to: the certificates of `ca_file`, or the system's when
/// there is none. `setting` names the config key in the error when neither gives any.
pub fn roots(ca_file: Option<&Path>, setting: &str) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.with_context(|| format!("{}: bad PEM", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{}: bad CA certificate", path.display()))?;
            }
            if roots.is_empty() {
                anyhow::bail!("{}: no certificate in it", path.display());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                anyhow::bail!("no system CA certificates found; set {setting}");
            }
        }
    }
    Ok(roots)
}

/// A rustls client configuration for the head-office broker.
pub fn client_config(
    ca_file: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let roots = roots(ca_file, "[mqtt] ca_file")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match (client_cert, client_key) {
        (Some(cert), Some(key)) => {
            let pem =
                std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
            let chain = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("{}: bad PEM", cert.display()))?;
            let pem =
                std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
            let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
                .with_context(|| format!("{}: bad PEM", key.display()))?
                .with_context(|| format!("{}: no private key in it", key.display()))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .context("client certificate and key do not match")?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
