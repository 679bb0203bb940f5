//! Connecting: the password from its file, TLS as `sslmode` says, the connection driven by
//! a task of its own.
use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _},
};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    super::{ExportError, Reason},
    errors::classify,
    target::{PgTarget, TlsMode},
};

/// The password in `path`: its content less one trailing newline.
fn password(path: &std::path::Path) -> Result<String, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ExportError::new(
            Reason::Auth,
            format!("password_file {}: cannot read it: {e}", path.display()),
        )
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(ExportError::new(
            Reason::Auth,
            format!("password_file {}: holds no password", path.display()),
        ));
    }
    Ok(text.to_owned())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CA certificates of `ca_file`.
fn roots(path: &std::path::Path) -> Result<RootCertStore, ExportError> {
    let bad = |problem: String| {
        ExportError::new(Reason::Connect, format!("ca_file {}: {problem}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot read it: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    let mut store = RootCertStore::empty();
    for cert in certs {
        store.add(cert).map_err(|e| bad(format!("a certificate is refused: {e}")))?;
    }
    Ok(store)
}

fn tls_config(target: &PgTarget) -> Result<ClientConfig, ExportError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ExportError::new(Reason::Other, format!("TLS setup: {e}")))?;
    Ok(match (&target.tls, &target.ca_file) {
        (TlsMode::VerifyFull, Some(ca)) => {
            builder.with_root_certificates(roots(ca)?).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider())))
            .with_no_client_auth(),
    })
}

/// Open a connection to `target`.
pub async fn connect(target: &PgTarget) -> Result<Client, ExportError> {
    let mut config = target.config.clone();
    if let Some(path) = &target.password_file {
        config.password(password(path)?);
    }
    let fail = |e: tokio_postgres::Error| classify(&e, Reason::Connect);
    let client = if target.tls == TlsMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(fail)?;
        tokio::spawn(drive(connection));
        client
    } else {
        let tls = MakeRustlsConnect::new(tls_config(target)?);
        let (client, connection) = config.connect(tls).await.map_err(fail)?;
        tokio::spawn(drive(connection));
        client
    };
    Ok(client)
}

/// Run a connection until it closes; its error shows again in the client's next call.
async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %e, "export connection closed");
    }
}

/// `sslmode=require`: encrypted, any certificate taken (as libpq does without a root
/// certificate); the handshake's signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
