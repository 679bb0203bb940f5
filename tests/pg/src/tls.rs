//! Certificates for a TLS cluster, made with `openssl`: a test CA, another CA that signed
//! nothing the server shows, and a server certificate for 127.0.0.1 signed by the first.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::run;

/// The certificates of a TLS cluster (PEM files).
#[derive(Debug, Clone)]
pub struct PgTls {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server shows.
    pub other_ca: PathBuf,
}

/// A CA (`name.pem`, `name.key`) in `dir`.
fn make_ca(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let (key, pem) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pem")));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN=paddock test {name}"))
        .args([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&pem))?;
    Ok(pem)
}

/// A server certificate for 127.0.0.1 signed by `ca`: (certificate, key).
fn make_server_cert(dir: &Path, ca: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (key, csr, pem, ext) = (
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
        dir.join("server.ext"),
    );
    run(Command::new("openssl")
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .with_context(|| format!("write {}", ext.display()))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(ca)
        .arg("-CAkey")
        .arg(ca.with_extension("key"))
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&pem))?;
    Ok((pem, key))
}

/// The CAs and the server's certificate in `dir`, and the server's `-c` settings.
pub(crate) fn make(dir: &Path) -> anyhow::Result<(PgTls, Vec<String>)> {
    std::fs::create_dir(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let ca = make_ca(dir, "ca")?;
    let other_ca = make_ca(dir, "other-ca")?;
    let (cert, key) = make_server_cert(dir, &ca)?;
    let settings = vec![
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", cert.display()),
        format!("ssl_key_file={}", key.display()),
    ];
    Ok((PgTls { ca, other_ca }, settings))
}
