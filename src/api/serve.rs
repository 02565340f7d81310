//! How `nbo-stream api` serves its connections: **where slow clients are cut off, and where TLS
//! and mutual TLS are decided**.
//!
//! Each accepted connection gets `api.read_timeout` for its TLS handshake (with `[api.tls]`) and
//! again for each request's headers (hyper closes a connection whose headers do not arrive in
//! time). Hyper starts that wait when the previous answer has gone, so it is also how long a
//! kept-alive connection may sit idle: clients' pools should drop idle connections sooner. The
//! body's own bound is the handler's (`decide`: 408). With `api.tls.client_ca`,
//! rustls refuses in the handshake a client that presents no certificate that CA signs, before
//! any HTTP is read. Connections are HTTP/1.1 with keep-alive.

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::{self, pki_types::pem::PemObject, pki_types::*};

use crate::config::api::ApiTls;

/// The TLS acceptor of `[api.tls]`: its certificate chain and key, and with `client_ca` a
/// verifier that requires a client certificate that CA signs. A file that is missing or not
/// PEM fails the start, naming the field.
pub fn acceptor(tls: &ApiTls) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let read = |field: &str, path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("api.tls.{field}: {}", path.display()))
    };
    let cert = read("cert", &tls.cert)?;
    let key = read("key", &tls.key)?;
    let client_ca = tls
        .client_ca
        .as_ref()
        .map(|path| read("client_ca", path))
        .transpose()?;
    acceptor_from_pem(&cert, &key, client_ca.as_deref()).map_err(|(field, reason)| {
        let path = match field {
            "cert" => &tls.cert,
            "key" => &tls.key,
            _ => tls.client_ca.as_ref().unwrap_or(&tls.cert),
        };
        anyhow::anyhow!("api.tls.{field}: {}: {reason}", path.display())
    })
}

/// [`acceptor`] from the PEM texts themselves (the test Schema Registry serves with it too);
/// an error names the field it comes from (`cert`, `key`, `client_ca`) and why.
pub fn acceptor_from_pem(
    cert: &[u8],
    key: &[u8],
    client_ca: Option<&[u8]>,
) -> Result<tokio_rustls::TlsAcceptor, (&'static str, String)> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| ("cert", format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(("cert", "holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| ("key", format!("not a PEM private key: {e}")))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let bad = |e: String| ("client_ca", e);
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .map_err(|e| bad(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        (
            "cert",
            format!("the certificate and the key do not make a server configuration: {e}"),
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` for the life of the process: each connection on a task of its
/// own, through `tls` when given, every read bounded by `read_timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    read_timeout: Duration,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, mostly: wait rather than spin.
                tracing::warn!(error = %e, "the API could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(read_timeout)
                .keep_alive(true);
            let served = match tls {
                None => http.serve_connection(TokioIo::new(stream), service).await,
                Some(tls) => match tokio::time::timeout(read_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake not finished in api.read_timeout");
                        return;
                    }
                },
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
