//! TLS client configurations for the two encryption modes.
//!
//! Relaxed accepts any certificate but still verifies the handshake
//! signatures, so the connection is encrypted and bound to the key the
//! server presented. Strict verifies the chain to a trusted CA, the name
//! against subjectAltName, the validity period, and requires a server key
//! longer than 1024 bits.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use dirsync_core::EncryptionMode;

/// The minimum accepted server key length in Strict mode is this + 1.
pub const STRICT_MIN_KEY_BITS_EXCLUSIVE: usize = 1024;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client configuration for `mode` and one connection to
/// `server`. `extra_roots` are trusted in addition to the system's roots
/// (Strict only). The certificate is checked against `server` — the host
/// the admin configured — whatever name the transport used.
pub fn client_config(
    mode: EncryptionMode,
    extra_roots: &[CertificateDer<'static>],
    server: ServerName<'static>,
) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verifier: Arc<dyn ServerCertVerifier> = match mode {
        EncryptionMode::Relaxed => Arc::new(RelaxedVerifier(provider)),
        EncryptionMode::Strict => {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            roots.add_parsable_certificates(extra_roots.iter().cloned());
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("no trusted CA certificates are available: {e}"))?;
            Arc::new(StrictVerifier { webpki, server })
        }
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// Reads a PEM bundle of CA certificates (for Strict mode).
pub fn load_ca_bundle(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CA bundle {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA bundle {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "the CA bundle {} holds no certificates",
            path.display()
        ));
    }
    Ok(certs)
}

/// Key length in bits of a DER certificate's public key.
pub fn key_bits(der: &[u8]) -> Option<usize> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let key = cert.public_key().parsed().ok()?;
    Some(key.key_size())
}

/// Offers SHA-256 signature schemes first: a DC with an RSA 1024 key
/// cannot make an RSA-PSS-SHA512 signature (the key is too short for it),
/// and some servers abort instead of choosing another scheme.
fn sha256_first(mut schemes: Vec<SignatureScheme>) -> Vec<SignatureScheme> {
    schemes.sort_by_key(|s| match s {
        SignatureScheme::RSA_PSS_SHA256 | SignatureScheme::RSA_PKCS1_SHA256 => 0,
        SignatureScheme::ECDSA_NISTP256_SHA256 | SignatureScheme::ED25519 => 1,
        _ => 2,
    });
    schemes
}

#[derive(Debug)]
struct RelaxedVerifier(Arc<CryptoProvider>);

impl ServerCertVerifier for RelaxedVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        .or_else(|e| short_rsa::verify(message, cert, dss).ok_or(e))
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
        .or_else(|e| short_rsa::verify(message, cert, dss).ok_or(e))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        sha256_first(self.0.signature_verification_algorithms.supported_schemes())
    }
}

#[derive(Debug)]
struct StrictVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    server: ServerName<'static>,
}

impl ServerCertVerifier for StrictVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _transport_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            &self.server,
            ocsp_response,
            now,
        )?;
        match key_bits(end_entity) {
            Some(bits) if bits > STRICT_MIN_KEY_BITS_EXCLUSIVE => Ok(verified),
            Some(bits) => Err(rustls::Error::General(format!(
                "the server key is {bits} bits; Strict mode requires a key length greater than 1024 bits"
            ))),
            None => Err(rustls::Error::General(
                "the server certificate's key cannot be read".to_owned(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        sha256_first(self.webpki.supported_verify_schemes())
    }
}

/// Handshake signatures of RSA keys shorter than 2048 bits, which ring
/// refuses to verify. Relaxed mode accepts such keys but still checks that
/// the server holds the private key of the certificate it presented.
mod short_rsa {
    use rsa::signature::Verifier;
    use rsa::{BigUint, RsaPublicKey};
    use rustls::client::danger::HandshakeSignatureValid;
    use rustls::pki_types::CertificateDer;
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use sha2::{Sha256, Sha384, Sha512};
    use x509_parser::public_key::PublicKey;

    /// `Some` when `dss` is a valid signature of `message` by the short RSA
    /// key of `cert`; `None` otherwise (the caller's error stands).
    pub fn verify(
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Option<HandshakeSignatureValid> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
        let PublicKey::RSA(key) = parsed.public_key().parsed().ok()? else {
            return None;
        };
        let key = RsaPublicKey::new(
            BigUint::from_bytes_be(key.modulus),
            BigUint::from_bytes_be(key.exponent),
        )
        .ok()?;
        if rsa::traits::PublicKeyParts::size(&key) * 8 >= 2048 {
            return None; // ring's verdict stands for full-size keys
        }
        let sig = dss.signature();
        let ok = match dss.scheme {
            SignatureScheme::RSA_PSS_SHA256 => pss::<Sha256>(key, message, sig),
            SignatureScheme::RSA_PSS_SHA384 => pss::<Sha384>(key, message, sig),
            SignatureScheme::RSA_PSS_SHA512 => pss::<Sha512>(key, message, sig),
            SignatureScheme::RSA_PKCS1_SHA256 => pkcs1::<Sha256>(key, message, sig),
            SignatureScheme::RSA_PKCS1_SHA384 => pkcs1::<Sha384>(key, message, sig),
            SignatureScheme::RSA_PKCS1_SHA512 => pkcs1::<Sha512>(key, message, sig),
            _ => false,
        };
        ok.then(HandshakeSignatureValid::assertion)
    }

    fn pss<D>(key: RsaPublicKey, message: &[u8], sig: &[u8]) -> bool
    where
        D: sha2::Digest + sha2::digest::FixedOutputReset,
    {
        let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
            return false;
        };
        rsa::pss::VerifyingKey::<D>::new(key)
            .verify(message, &sig)
            .is_ok()
    }

    fn pkcs1<D>(key: RsaPublicKey, message: &[u8], sig: &[u8]) -> bool
    where
        D: sha2::Digest + rsa::pkcs8::AssociatedOid,
    {
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
            return false;
        };
        rsa::pkcs1v15::VerifyingKey::<D>::new(key)
            .verify(message, &sig)
            .is_ok()
    }
}

/// What a certificate says, for Test Connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateReport {
    pub subject: String,
    pub issuer: String,
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub key_bits: Option<usize>,
    pub self_signed: bool,
    /// `None` when Strict mode accepts it; otherwise why not.
    pub strict_refusal: Option<String>,
}

/// Reads a server certificate and judges it as Strict mode would at
/// `now_secs` (Unix seconds), for `server`.
pub fn inspect(
    der: &[u8],
    server: &ServerName<'static>,
    extra_roots: &[CertificateDer<'static>],
    now_secs: i64,
) -> Result<CertificateReport, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("the server certificate cannot be read: {e}"))?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                        4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                        16 => {
                            let mut b = [0u8; 16];
                            b.copy_from_slice(ip);
                            std::net::Ipv6Addr::from(b).to_string()
                        }
                        _ => format!("{ip:?}"),
                    },
                    other => format!("{other}"),
                })
                .collect()
        })
        .unwrap_or_default();
    let key_bits = key_bits(der);
    let verdict = client_config(EncryptionMode::Strict, extra_roots, server.clone())
        .map_err(|e| e.to_string())
        .and_then(|_| {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots.add_parsable_certificates(extra_roots.iter().cloned());
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| e.to_string())?;
            let strict = StrictVerifier {
                webpki,
                server: server.clone(),
            };
            let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                u64::try_from(now_secs).unwrap_or_default(),
            ));
            strict
                .verify_server_cert(&CertificateDer::from(der.to_vec()), &[], server, &[], now)
                .map(|_| ())
                .map_err(|e| describe_tls_error(&e.to_string()))
        });
    Ok(CertificateReport {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key_bits,
        self_signed: cert.subject() == cert.issuer(),
        strict_refusal: verdict.err(),
    })
}

/// A TLS verification error in words an admin can act on.
pub fn describe_tls_error(text: &str) -> String {
    if text.contains("UnknownIssuer") {
        "the certificate is not issued by a trusted CA (unknown issuer)".to_owned()
    } else if text.contains("NotValidForName") || text.contains("not valid for") {
        format!("the certificate does not name this host in its subjectAltName ({text})")
    } else if text.contains("Expired") {
        "the certificate has expired".to_owned()
    } else if text.contains("NotValidYet") {
        "the certificate is not valid yet".to_owned()
    } else {
        text.to_owned()
    }
}
