//! A throwaway certificate authority made at test time (rcgen): a CA certificate and server or
//! client certificates for given host names (valid, expiring soon, expired), written as PEM
//! files into the CA's own temporary directory.
//!
//! ```ignore
//! let ca = tls::TestCa::new("test-ca");
//! let shop = ca.issue(&["shop.test"]);            // valid now, for 90 days
//! let old = ca.issue_expired(&["expired.test"]);  // expired yesterday
//! // nginx: ssl_certificate shop.cert; ssl_certificate_key shop.key
//! // scenario: tls: {ca_file: ca.ca_file()}
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Lifetime of a certificate from [`TestCa::issue`].
pub const VALID_FOR: Duration = Duration::from_secs(90 * 86_400);

/// PEM files of one issued certificate and its private key (PKCS#8).
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority living in a temporary directory (removed on drop).
pub struct TestCa {
    dir: tempfile::TempDir,
    issuer: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
    serial: AtomicUsize,
}

impl TestCa {
    /// A new CA named `name` (its subject CN); its certificate is written to `ca_file()`.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::Builder::new()
            .prefix("flowprobe-ca-")
            .tempdir()
            .expect("create a temp dir for the test CA");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "flowprobe tests");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (SystemTime::now() - DAY).into();
        params.not_after = (SystemTime::now() + 3650 * DAY).into();
        let key = KeyPair::generate().expect("generate the CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign the CA");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).expect("write ca.pem");
        TestCa {
            dir,
            issuer,
            ca_file,
            serial: AtomicUsize::new(0),
        }
    }

    /// PEM file of the CA certificate (what a client trusts: `tls.ca_file`).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate as PEM text.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The directory holding every file this CA wrote.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A server certificate for `hosts` (DNS names or IP addresses), valid from a day ago for
    /// [`VALID_FOR`].
    pub fn issue(&self, hosts: &[&str]) -> CertFiles {
        let now = SystemTime::now();
        self.issue_between(hosts, now - DAY, now + VALID_FOR, false)
    }

    /// A server certificate for `hosts` that expires `left` from now (e.g. in 7 days, to fail a
    /// `certificate expires_in > 14d` assertion).
    pub fn issue_expiring_in(&self, hosts: &[&str], left: Duration) -> CertFiles {
        let now = SystemTime::now();
        self.issue_between(hosts, now - DAY, now + left, false)
    }

    /// A server certificate for `hosts` that expired yesterday.
    pub fn issue_expired(&self, hosts: &[&str]) -> CertFiles {
        let now = SystemTime::now();
        self.issue_between(hosts, now - 30 * DAY, now - DAY, false)
    }

    /// A client certificate (mTLS) with common name `name`, valid for [`VALID_FOR`].
    pub fn issue_client(&self, name: &str) -> CertFiles {
        let now = SystemTime::now();
        self.issue_between(&[name], now - DAY, now + VALID_FOR, true)
    }

    fn issue_between(
        &self,
        hosts: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
        client: bool,
    ) -> CertFiles {
        let params = leaf_params(hosts, not_before, not_after, client);
        let key = KeyPair::generate().expect("generate a leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a leaf certificate");
        self.write(hosts, &cert.pem(), &key)
    }

    /// A server certificate for `hosts` (valid for [`VALID_FOR`]) issued by an intermediate CA
    /// (signed by this CA) that expires `intermediate_left` from now; the certificate file
    /// holds the leaf, then the intermediate, as a server sends its chain.
    pub fn issue_via_intermediate(&self, hosts: &[&str], intermediate_left: Duration) -> CertFiles {
        let now = SystemTime::now();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "flowprobe test intermediate");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = (now - DAY).into();
        params.not_after = (now + intermediate_left).into();
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate the intermediate key");
        let mid =
            CertifiedIssuer::signed_by(params, key, &self.issuer).expect("sign the intermediate");
        let leaf = leaf_params(hosts, now - DAY, now + VALID_FOR, false);
        let key = KeyPair::generate().expect("generate a leaf key");
        let cert = leaf.signed_by(&key, &mid).expect("sign a leaf certificate");
        self.write(hosts, &format!("{}{}", cert.pem(), mid.pem()), &key)
    }

    /// Writes a certificate (chain) and its key as PEM files named after the first host.
    fn write(&self, hosts: &[&str], cert_pem: &str, key: &KeyPair) -> CertFiles {
        let n = self.serial.fetch_add(1, Ordering::SeqCst);
        let stem = format!(
            "{n:02}-{}",
            hosts
                .first()
                .copied()
                .unwrap_or("cert")
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "_")
        );
        let files = CertFiles {
            cert: self.dir.path().join(format!("{stem}.crt")),
            key: self.dir.path().join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, cert_pem).expect("write the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write the private key");
        files
    }
}

/// A leaf certificate's parameters: `hosts` as SANs, the first as CN.
fn leaf_params(
    hosts: &[&str],
    not_before: SystemTime,
    not_after: SystemTime,
    client: bool,
) -> CertificateParams {
    let sans: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("valid host names");
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        hosts.first().copied().unwrap_or("flowprobe-test"),
    );
    params.distinguished_name = dn;
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    params.use_authority_key_identifier_extension = true;
    params
}
