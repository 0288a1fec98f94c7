//! A test CA made at test time, and server certificates it signs.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and its PEM.
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "dripgate test CA");
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    /// Writes a leaf certificate for `localhost` (with `cn` as common name) and its key into
    /// `dir` as cert.pem / key.pem; returns their paths.
    pub fn issue(&self, dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        // Write to temporary names and rename, as a cert manager would.
        std::fs::write(dir.join("cert.pem.tmp"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem.tmp"), key.serialize_pem()).unwrap();
        std::fs::rename(dir.join("key.pem.tmp"), &key_path).unwrap();
        std::fs::rename(dir.join("cert.pem.tmp"), &cert_path).unwrap();
        (cert_path, key_path)
    }
}
