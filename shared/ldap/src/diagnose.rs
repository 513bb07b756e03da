//! Test Connection: the admin console's checks — hostname, connectivity,
//! certificate, authentication, sample addresses, delta sync — each with a
//! hint when it fails. When a host cannot be reached, the checks go on with the
//! alternate host; the later checks use the host that works.

use std::time::Duration;

use tokio::time::Instant;

use rustls::pki_types::ServerName;
use tokio::sync::mpsc;

use dirsync_core::{DeltaMethod, DirectorySchema, Dn, EncryptionMode};

use crate::{BindFailure, Endpoint, LdapError, Target, connect_host, open, tls};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Hostname,
    Connectivity,
    Certificate,
    Authentication,
    SampleAddresses,
    DeltaSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Warning,
    Failed,
    Skipped,
}

/// One finished check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub check: Check,
    pub host: String,
    pub outcome: Outcome,
    pub detail: String,
    /// What to change, when it did not pass.
    pub hint: String,
    pub elapsed: Duration,
    pub samples: Vec<String>,
}

struct Reporter {
    tx: mpsc::Sender<Step>,
}

impl Reporter {
    async fn send(
        &self,
        check: Check,
        host: &str,
        outcome: Outcome,
        detail: impl Into<String>,
        hint: impl Into<String>,
        started: Instant,
    ) {
        // The receiver is gone only when the caller stopped listening.
        let _ = self
            .tx
            .send(Step {
                check,
                host: host.to_owned(),
                outcome,
                detail: detail.into(),
                hint: hint.into(),
                elapsed: started.elapsed(),
                samples: Vec::new(),
            })
            .await;
    }
}

/// Runs every check, sending each step as it finishes. `now_secs` is the
/// time certificates are judged at.
pub async fn run(
    target: &Target,
    root_dn: &Dn,
    directory: &DirectorySchema,
    delta_method: DeltaMethod,
    now_secs: i64,
    tx: mpsc::Sender<Step>,
) {
    let r = Reporter { tx };
    let endpoints = target.endpoints();
    // Steps name a host, and its port when it is not the primary's.
    let label = |ep: &Endpoint| {
        if ep.port == target.port {
            ep.host.clone()
        } else {
            ep.to_string()
        }
    };

    // Hostname and connectivity, host by host, until one answers.
    let mut working = None;
    for (i, ep) in endpoints.iter().enumerate() {
        let host = &label(ep);
        let port = ep.port;
        let next = if i + 1 < endpoints.len() {
            "; continuing with the alternate host"
        } else {
            ""
        };
        let started = Instant::now();
        let lookup = tokio::time::timeout(
            target.timeouts.connect,
            tokio::net::lookup_host((ep.host.as_str(), port)),
        )
        .await;
        let addrs: Vec<std::net::SocketAddr> = match lookup {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                r.send(
                    Check::Hostname,
                    host,
                    Outcome::Failed,
                    format!("{host} does not resolve: {e}{next}"),
                    "check the host name, or use the domain controller's IP address",
                    started,
                )
                .await;
                continue;
            }
            Err(_) => {
                r.send(
                    Check::Hostname,
                    host,
                    Outcome::Failed,
                    format!(
                        "resolving {host} took longer than {:?}{next}",
                        target.timeouts.connect
                    ),
                    "check DNS, or use the domain controller's IP address",
                    started,
                )
                .await;
                continue;
            }
        };
        let listed: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        r.send(
            Check::Hostname,
            host,
            Outcome::Passed,
            format!("{host} resolves to {}", listed.join(", ")),
            "",
            started,
        )
        .await;

        let started = Instant::now();
        let mut last_error = String::new();
        let mut connected = false;
        for addr in &addrs {
            match tokio::time::timeout(
                target.timeouts.connect,
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(_)) => {
                    connected = true;
                    break;
                }
                Ok(Err(e)) => last_error = format!("{addr}: {e}"),
                Err(_) => {
                    last_error = format!("{addr}: no answer within {:?}", target.timeouts.connect)
                }
            }
        }
        if connected {
            r.send(
                Check::Connectivity,
                host,
                Outcome::Passed,
                format!("port {port} answers ({} ms)", started.elapsed().as_millis()),
                "",
                started,
            )
            .await;
            working = Some(ep.clone());
            break;
        }
        r.send(
            Check::Connectivity,
            host,
            Outcome::Failed,
            format!("cannot reach port {port}: {last_error}{next}"),
            format!(
                "check that the domain controller listens on port {port} and that firewalls let dirsync reach it"
            ),
            started,
        )
        .await;
    }
    let Some(endpoint) = working else {
        for check in [
            Check::Certificate,
            Check::Authentication,
            Check::SampleAddresses,
        ] {
            r.send(
                check,
                "",
                Outcome::Skipped,
                "no host could be reached",
                "",
                Instant::now(),
            )
            .await;
        }
        return;
    };
    let host = label(&endpoint);

    // Certificate: read it over a Relaxed connection, judge it as Strict.
    let started = Instant::now();
    let mut certificate_ok = true;
    match target.encryption {
        None => {
            r.send(
                Check::Certificate,
                &host,
                Outcome::Warning,
                "encryption is off: no certificate, and the bind password would cross the network in clear",
                "enable encryption (LDAPS on 636, or StartTLS on 389)",
                started,
            )
            .await;
        }
        Some(mode) => {
            let relaxed = Target {
                encryption: Some(EncryptionMode::Relaxed),
                ..target.clone()
            };
            let cert = match open(&relaxed, &endpoint).await {
                Ok(mut s) => s.peer_certificate().await,
                Err(e) => {
                    certificate_ok = false;
                    r.send(
                        Check::Certificate,
                        &host,
                        Outcome::Failed,
                        format!("no TLS session could be set up: {e}"),
                        "check that the port serves LDAPS (636, 3269) or StartTLS (389, 3268) and that the domain controller has a certificate",
                        started,
                    )
                    .await;
                    None
                }
            };
            if let Some(der) = cert {
                let server = ServerName::try_from(endpoint.host.clone()).unwrap_or_else(|_| {
                    ServerName::try_from("invalid.invalid")
                        .expect("a valid name")
                        .to_owned()
                });
                match tls::inspect(&der, &server, &target.extra_roots, now_secs) {
                    Err(e) => {
                        certificate_ok = false;
                        r.send(Check::Certificate, &host, Outcome::Failed, e, "", started)
                            .await;
                    }
                    Ok(report) => {
                        let detail = format!(
                            "subject {}, issuer {}{}, names [{}], valid {} to {}, key {} bits",
                            report.subject,
                            report.issuer,
                            if report.self_signed {
                                " (self-signed)"
                            } else {
                                ""
                            },
                            report.names.join(", "),
                            chrono_date(report.not_before),
                            chrono_date(report.not_after),
                            report
                                .key_bits
                                .map_or("unknown".to_owned(), |b| b.to_string()),
                        );
                        match (mode, report.strict_refusal) {
                            (_, None) => {
                                r.send(Check::Certificate, &host, Outcome::Passed, detail, "", started)
                                    .await
                            }
                            (EncryptionMode::Relaxed, Some(why)) => {
                                r.send(
                                    Check::Certificate,
                                    &host,
                                    Outcome::Passed,
                                    format!("{detail}; accepted in Relaxed mode although Strict would refuse it: {why}"),
                                    "",
                                    started,
                                )
                                .await
                            }
                            (EncryptionMode::Strict, Some(why)) => {
                                certificate_ok = false;
                                r.send(
                                    Check::Certificate,
                                    &host,
                                    Outcome::Failed,
                                    format!("{detail}; Strict mode refuses it: {why}"),
                                    "install a certificate from a trusted CA that names this host in subjectAltName with a key longer than 1024 bits, or choose Relaxed mode",
                                    started,
                                )
                                .await
                            }
                        }
                    }
                }
            }
        }
    }

    // Authentication, with the settings as they are.
    let started = Instant::now();
    let session = if certificate_ok {
        match connect_host(target, &endpoint).await {
            Ok(s) => {
                r.send(
                    Check::Authentication,
                    &host,
                    Outcome::Passed,
                    format!("bound as {}", target.bind_dn),
                    "",
                    started,
                )
                .await;
                Some(s)
            }
            Err(e) => {
                r.send(
                    Check::Authentication,
                    &host,
                    Outcome::Failed,
                    e.to_string(),
                    bind_hint(&e),
                    started,
                )
                .await;
                None
            }
        }
    } else {
        r.send(
            Check::Authentication,
            &host,
            Outcome::Skipped,
            "the certificate check failed",
            "",
            started,
        )
        .await;
        None
    };

    // Sample addresses under the Root DN.
    let started = Instant::now();
    let Some(mut session) = session else {
        r.send(
            Check::SampleAddresses,
            &host,
            Outcome::Skipped,
            "not bound",
            "",
            started,
        )
        .await;
        return;
    };
    let gc = directory.is_global_catalog(endpoint.port);
    let gc_note = if gc {
        "; this is a Global Catalog port: groups sync, their members do not"
    } else {
        ""
    };
    let step = match session.sample_addresses(root_dn, directory, 5).await {
        Ok(samples) if samples.is_empty() => Step {
            check: Check::SampleAddresses,
            host: host.clone(),
            outcome: Outcome::Warning,
            detail: format!("no object with an email address under {root_dn}{gc_note}"),
            hint: "check the Root DN: it should hold the users, groups and contacts to sync"
                .to_owned(),
            elapsed: started.elapsed(),
            samples,
        },
        Ok(samples) => Step {
            check: Check::SampleAddresses,
            host: host.clone(),
            outcome: if gc {
                Outcome::Warning
            } else {
                Outcome::Passed
            },
            detail: format!("{} addresses found under {root_dn}{gc_note}", samples.len()),
            hint: if gc {
                "use port 636 (or 389 with StartTLS) to sync group members".to_owned()
            } else {
                String::new()
            },
            elapsed: started.elapsed(),
            samples,
        },
        Err(e) => Step {
            check: Check::SampleAddresses,
            host: host.clone(),
            outcome: Outcome::Failed,
            detail: match &e {
                LdapError::RootDnNotFound(_) => format!("Root DN not found: {root_dn}"),
                other => other.to_string(),
            },
            hint: "check the Root DN, e.g. OU=New York,DC=corp,DC=example,DC=com".to_owned(),
            elapsed: started.elapsed(),
            samples: Vec::new(),
        },
    };
    let _ = r.tx.send(step).await;
    let started = Instant::now();
    let (outcome, detail, hint) =
        delta_capability(&mut session, root_dn, directory, delta_method, gc).await;
    r.send(Check::DeltaSync, &host, outcome, detail, hint, started)
        .await;
    session.unbind().await;
}

/// Grant the bind account the right DirSync needs to see every change.
const REPLICATION_HINT: &str = "grant the bind account \"Replicating Directory Changes\" on the domain (Active Directory Users and Computers → the domain → Properties → Security), so that delta syncs see deletions within minutes";

/// Whether delta syncs can read the directory's changes, and how.
async fn delta_capability(
    session: &mut crate::Session,
    root_dn: &Dn,
    directory: &DirectorySchema,
    delta_method: DeltaMethod,
    global_catalog: bool,
) -> (Outcome, String, String) {
    use crate::delta::DirSyncMode;
    if let DirectorySchema::Ldap(_) = directory {
        return match session.syncrepl_baseline(root_dn).await {
            Ok(_) => (
                Outcome::Passed,
                format!(
                    "content synchronization (RFC 4533) reads the changes of {root_dn}, deletions included"
                ),
                String::new(),
            ),
            Err(refused) => match session.directory_time().await {
                Ok(clock) => (
                    Outcome::Warning,
                    format!(
                        "content synchronization is unavailable ({refused}): delta syncs read the entries whose modifyTimestamp changed, by {}, and deletions and moves out of the Root DN wait for the next full sync",
                        if clock.is_some() {
                            "the directory's clock"
                        } else {
                            "dirsync's clock (the directory tells no time: no currentTime in its rootDSE, no cn=Monitor the bind account may read)"
                        }
                    ),
                    SYNCPROV_HINT.into(),
                ),
                Err(e) => (
                    Outcome::Warning,
                    format!(
                        "delta syncs cannot read changes ({refused}; {e}): every run reads in full"
                    ),
                    SYNCPROV_HINT.into(),
                ),
            },
        };
    }
    if global_catalog {
        return (
            Outcome::Skipped,
            "a Global Catalog port offers no delta reads: every run reads in full".into(),
            "use port 636 (or 389 with StartTLS)".into(),
        );
    }
    let dc = match session.domain_controller().await {
        Ok(dc) => dc,
        Err(e) => {
            return (
                Outcome::Warning,
                format!(
                    "the domain controller cannot be identified ({e}): every run reads in full"
                ),
                String::new(),
            );
        }
    };
    let refused = match delta_method {
        DeltaMethod::UsnChanged => None,
        DeltaMethod::DirSync => match session.dirsync_baseline(&dc.naming_context).await {
            Ok((DirSyncMode::Replication, _)) => {
                return (
                    Outcome::Passed,
                    format!(
                        "DirSync reads every change of {} (domain controller {})",
                        dc.naming_context, dc.invocation_id
                    ),
                    String::new(),
                );
            }
            Ok((DirSyncMode::ObjectSecurity, _)) => {
                return (
                    Outcome::Warning,
                    "the bind account lacks \"Replicating Directory Changes\": delta syncs read with object security and do not see deletions, which wait for the next full sync".into(),
                    REPLICATION_HINT.into(),
                );
            }
            Err(e) => Some(e),
        },
    };
    // uSNChanged polling: asked for, or where the DC refuses DirSync.
    let Some(usn) = dc.highest_committed_usn else {
        return (
            Outcome::Warning,
            "the rootDSE names no highestCommittedUSN: delta syncs cannot run, every run reads in full".into(),
            String::new(),
        );
    };
    let how = match &refused {
        Some(e) => format!(
            "the domain controller refuses DirSync ({e}): delta syncs poll uSNChanged instead"
        ),
        None => "delta syncs poll uSNChanged".to_owned(),
    };
    let how = format!(
        "{how} on domain controller {} (highestCommittedUSN {usn})",
        dc.invocation_id
    );
    let tombstones = session.sees_tombstones(&dc.naming_context).await;
    match (refused, tombstones) {
        (None, true) => (
            Outcome::Passed,
            format!("{how}; deletions are read from CN=Deleted Objects"),
            String::new(),
        ),
        (None, false) => (
            Outcome::Warning,
            format!(
                "{how}; the bind account may not read CN=Deleted Objects, so deletions wait for the next full sync"
            ),
            TOMBSTONES_HINT.into(),
        ),
        (Some(_), tombstones) => (
            Outcome::Warning,
            if tombstones {
                how
            } else {
                format!("{how}; deletions wait for the next full sync")
            },
            REPLICATION_HINT.into(),
        ),
    }
}

/// Let a generic LDAP directory serve content synchronization.
const SYNCPROV_HINT: &str = "OpenLDAP: load the syncprov overlay on the database (olcOverlay=syncprov) with a session log (olcSpSessionlog: 100000), so that delta syncs read only what changed and name deletions";

/// Let uSNChanged polling see deletions.
const TOMBSTONES_HINT: &str = "let the bind account read CN=Deleted Objects (dsacls \"CN=Deleted Objects,DC=…\" /takeownership, then dsacls … /G DOMAIN\\account:LCRP), or use DirSync and grant \"Replicating Directory Changes\"";

fn chrono_date(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn bind_hint(e: &LdapError) -> String {
    match e {
        LdapError::Bind { failure, .. } => match failure {
            BindFailure::InvalidCredentials => "check the user DN and the password",
            BindFailure::AccountDisabled => "enable the bind account in AD",
            BindFailure::AccountLocked => "unlock the bind account in AD",
            BindFailure::PasswordExpired | BindFailure::PasswordMustChange => {
                "set a new password for the bind account (and let it never expire)"
            }
            BindFailure::AccountExpired => "extend the bind account's expiry in AD",
            BindFailure::EncryptionRequired => {
                "enable encryption (LDAPS on 636, or StartTLS on 389)"
            }
            BindFailure::Other => "check the bind account",
        }
        .to_owned(),
        _ => "check the host, the port and the encryption settings".to_owned(),
    }
}
