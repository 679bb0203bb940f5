//! Connecting to the cluster's PostgreSQL: TLS with rustls (the CA file, or the system's
//! roots), then a check that the exporter's schema is there.
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer, pki_types::pem::PemObject};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{ClusterError, describe, settings::SourceSettings, settings::Tls};

/// The roots a server certificate must chain to: the CA file's, else the system's.
fn roots(settings: &SourceSettings) -> Result<RootCertStore, ClusterError> {
    let mut roots = RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            let problem = |problem: String| ClusterError::CaFile {
                origin: settings.origin.clone(),
                path: path.clone(),
                problem,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| problem(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| problem(e.to_string()))?;
            if certs.is_empty() {
                return Err(problem("holds no PEM certificate".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| problem(e.to_string()))?;
            }
        }
        None => {
            // Unreadable system certificates are skipped, as every TLS client does.
            let (added, _) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            tracing::debug!(added, "system CA certificates");
        }
    }
    Ok(roots)
}

fn tls_connector(settings: &SourceSettings) -> Result<MakeRustlsConnect, ClusterError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClusterError::Runtime {
            origin: settings.origin.clone(),
            problem: e.to_string(),
        })?
        .with_root_certificates(roots(settings)?)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A connected client, its connection driven by the current runtime; the schema checked.
pub(super) async fn connect(settings: &SourceSettings) -> Result<Client, ClusterError> {
    let (config, tls) = settings.client_config()?;
    let origin = || settings.origin.clone();
    let connected = match tls {
        Tls::Disable => config.connect(tokio_postgres::NoTls).await.map(|(client, conn)| {
            tokio::spawn(conn);
            client
        }),
        Tls::Prefer | Tls::Require => {
            config.connect(tls_connector(settings)?).await.map(|(client, conn)| {
                tokio::spawn(conn);
                client
            })
        }
    };
    let client =
        connected.map_err(|e| ClusterError::Connect { origin: origin(), problem: describe(&e) })?;
    let row = client
        .query_one(
            "SELECT to_regclass('paddock.runs') IS NOT NULL \
             AND to_regclass('paddock.events') IS NOT NULL, current_database()",
            &[],
        )
        .await
        .map_err(|e| ClusterError::Query { origin: origin(), problem: describe(&e) })?;
    let (present, database): (bool, String) = (row.get(0), row.get(1));
    if !present {
        return Err(ClusterError::NoSchema { origin: origin(), database });
    }
    Ok(client)
}
