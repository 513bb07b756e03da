//! LDAP access to Active Directory: connect (LDAPS, StartTLS or plain, with
//! the alternate host as fallback), bind, and page through a Root DN.
//! Every LDAP call of dirsync is in this crate.

pub mod delta;
pub mod diagnose;
mod entry;
#[cfg(test)]
mod hostile;
pub mod syncrepl;
pub mod timestamp;
pub mod tls;

use std::net::Ipv6Addr;
use std::time::Duration;

use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope};
use rustls::pki_types::{CertificateDer, ServerName};
use secrecy::{ExposeSecret, SecretString};

use dirsync_core::{DirectorySchema, Dn, EncryptionMode};
use dirsync_proto::bus::DirectoryEntry;

pub use entry::{ATTRIBUTES, EntryReader, LdapReader, RawEntry, to_directory_entry};

/// Where and how to reach a directory.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub alternate_host: Option<String>,
    pub port: u16,
    pub encryption: Option<EncryptionMode>,
    /// Without encryption, a bind is refused unless this allows it: it
    /// would send the password in clear.
    pub allow_insecure_bind: bool,
    pub bind_dn: String,
    pub password: SecretString,
    /// CA certificates trusted in Strict mode besides the system's.
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub timeouts: Timeouts,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("alternate_host", &self.alternate_host)
            .field("port", &self.port)
            .field("encryption", &self.encryption)
            .field("bind_dn", &self.bind_dn)
            .field("password", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// A host to reach and its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.parse::<Ipv6Addr>().is_ok() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Target {
    /// The primary host, then the alternate one, on its own port when it
    /// names one (`dc2.corp.example.com:3269`), else on the primary's.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let primary = Endpoint {
            host: self.host.clone(),
            port: self.port,
        };
        let alternate = self.alternate_host.as_deref().map(|text| {
            match dirsync_core::settings::split_host_port(text) {
                Ok((host, port)) => Endpoint {
                    host,
                    port: port.unwrap_or(self.port),
                },
                // Checked when the settings were saved.
                Err(_) => Endpoint {
                    host: text.to_owned(),
                    port: self.port,
                },
            }
        });
        std::iter::once(primary).chain(alternate).collect()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Bind, and each page of a search.
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            operation: Duration::from_secs(60),
        }
    }
}

/// Why a bind was refused, from AD's `data` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFailure {
    InvalidCredentials,
    AccountDisabled,
    AccountLocked,
    PasswordExpired,
    PasswordMustChange,
    AccountExpired,
    EncryptionRequired,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum LdapError {
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{message}")]
    Bind {
        failure: BindFailure,
        message: String,
    },
    #[error("the Root DN {0} does not exist in the directory")]
    RootDnNotFound(String),
    #[error("the directory refused the search: {0}")]
    Search(String),
    #[error("the connection to the directory failed: {0}")]
    Connection(String),
    #[error("the directory did not answer within {0:?}")]
    Timeout(Duration),
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
}

impl LdapError {
    /// A stable label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Connection(_) => "connection",
            Self::Timeout(_) => "timeout",
            Self::TlsConfig(_) => "tls_config",
            Self::RootDnNotFound(_) => "root_dn_not_found",
            Self::Search(_) => "search",
            Self::Bind { failure, .. } => match failure {
                BindFailure::InvalidCredentials => "bind_invalid_credentials",
                BindFailure::AccountDisabled => "bind_account_disabled",
                BindFailure::AccountLocked => "bind_account_locked",
                BindFailure::PasswordExpired => "bind_password_expired",
                BindFailure::PasswordMustChange => "bind_password_must_change",
                BindFailure::AccountExpired => "bind_account_expired",
                BindFailure::EncryptionRequired => "bind_encryption_required",
                BindFailure::Other => "bind_other",
            },
        }
    }

    /// A failure of the transport (the next host may work), as opposed to
    /// one the directory answered.
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            Self::Connect { .. } | Self::Connection(_) | Self::Timeout(_)
        )
    }
}

/// A bound connection.
pub struct Session {
    ldap: Ldap,
    pub host: String,
    timeouts: Timeouts,
    link: Link,
}

/// Why a connection's driver stopped, once it has: a failed operation
/// then says what went wrong with the connection (the directory closed
/// it, or sent a message that cannot be read) instead of "the result
/// channel closed".
#[derive(Clone, Default)]
struct Link(std::sync::Arc<std::sync::Mutex<Option<String>>>);

impl Link {
    /// Drives the connection until it ends, keeping why it ended.
    fn drive(&self, conn: LdapConnAsync, host: &str) {
        let slot = self.clone();
        let host = host.to_owned();
        tokio::spawn(async move {
            let why = match conn.drive().await {
                Ok(_) => "the directory closed the connection".to_owned(),
                Err(ldap3::LdapError::Io { source })
                    if source.kind() == std::io::ErrorKind::UnexpectedEof
                        || source.to_string().contains("bytes remaining on stream") =>
                {
                    "the directory closed the connection in the middle of a message".to_owned()
                }
                Err(ldap3::LdapError::Io { source }) => source.to_string(),
                Err(e) => e.to_string(),
            };
            tracing::debug!(%host, reason = %why, "LDAP connection ended");
            if let Ok(mut s) = slot.0.lock() {
                s.get_or_insert(why);
            }
        });
    }

    fn reason(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }

    /// An operation's error, in dirsync's words.
    fn error(&self, e: ldap3::LdapError, timeout: Duration) -> LdapError {
        match e {
            ldap3::LdapError::Timeout { .. } => LdapError::Timeout(timeout),
            ldap3::LdapError::Io { source } => LdapError::Connection(source.to_string()),
            // The connection's driver is gone: say why.
            ldap3::LdapError::EndOfStream
            | ldap3::LdapError::OpSend { .. }
            | ldap3::LdapError::ResultRecv { .. }
            | ldap3::LdapError::IdScrubSend { .. }
            | ldap3::LdapError::MiscSend { .. } => LdapError::Connection(
                self.reason()
                    .unwrap_or_else(|| "the directory closed the connection".to_owned()),
            ),
            other => LdapError::Search(other.to_string()),
        }
    }
}

fn url_of(host: &str, port: u16, encryption: Option<EncryptionMode>) -> String {
    let host = if host.parse::<Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    // StartTLS on the plain LDAP ports; LDAPS on every other port.
    let ldaps = encryption.is_some() && !matches!(port, 389 | 3268);
    format!("{}://{host}:{port}", if ldaps { "ldaps" } else { "ldap" })
}

/// Host name the TLS layer is given for an IPv6 literal, which it cannot
/// take in URL form; the certificate is still checked against the address.
const IPV6_TRANSPORT_NAME: &str = "ipv6-literal.invalid";

/// Connects to `endpoint` (TLS as the target says), without binding.
pub async fn open(target: &Target, endpoint: &Endpoint) -> Result<Session, LdapError> {
    let (host, port) = (endpoint.host.as_str(), endpoint.port);
    let url = url_of(host, port, target.encryption);
    let connect_err = |reason: String| LdapError::Connect {
        url: url.clone(),
        reason,
    };
    let mut settings = LdapConnSettings::new().set_conn_timeout(target.timeouts.connect);
    let mut ldap_url = url.clone();
    if let Some(mode) = target.encryption {
        let server = ServerName::try_from(host.to_owned())
            .map_err(|e| connect_err(format!("{host:?} is not a valid host name: {e}")))?;
        settings = settings
            .set_config(
                tls::client_config(mode, &target.extra_roots, server)
                    .map_err(LdapError::TlsConfig)?,
            )
            .set_starttls(url.starts_with("ldap://"));
        if host.parse::<Ipv6Addr>().is_ok() {
            // ldap3 hands the URL's bracketed host to rustls, which refuses
            // it: name a placeholder (the TCP connection is opened here).
            ldap_url = url.replace(&format!("[{host}]"), IPV6_TRANSPORT_NAME);
        }
    }
    // The TCP connection is opened here, with TCP_NODELAY: an LDAP request
    // is written in more than one segment (TLS records, a bind after
    // StartTLS), and with Nagle's algorithm the second waits for the DC's
    // delayed ACK, ~40 ms per operation.
    let deadline = tokio::time::Instant::now() + target.timeouts.connect;
    let tcp = tokio::time::timeout_at(
        deadline,
        tokio::net::TcpStream::connect(match host.parse::<Ipv6Addr>() {
            Ok(ip) => (std::net::IpAddr::V6(ip).to_string(), port),
            Err(_) => (host.to_owned(), port),
        }),
    )
    .await
    .map_err(|_| LdapError::Timeout(target.timeouts.connect))?
    .map_err(|e| connect_err(e.to_string()))?;
    tcp.set_nodelay(true)
        .map_err(|e| connect_err(e.to_string()))?;
    let std = tcp.into_std().map_err(|e| connect_err(e.to_string()))?;
    settings = settings.set_std_stream(ldap3::StdStream::Tcp(std));
    let connect = LdapConnAsync::with_settings(settings, &ldap_url);
    let (conn, ldap) = tokio::time::timeout_at(deadline, connect)
        .await
        .map_err(|_| LdapError::Timeout(target.timeouts.connect))?
        .map_err(|e| match e {
            ldap3::LdapError::Timeout { .. } => LdapError::Timeout(target.timeouts.connect),
            e => connect_err(describe_connect_error(&e)),
        })?;
    let link = Link::default();
    link.drive(conn, host);
    Ok(Session {
        ldap,
        host: host.to_owned(),
        timeouts: target.timeouts,
        link,
    })
}

/// A bind without encryption sends the password in clear: refused unless
/// the target allows it.
pub fn refuse_insecure_bind(target: &Target) -> Result<(), LdapError> {
    if target.encryption.is_none() && !target.allow_insecure_bind {
        return Err(LdapError::Bind {
            failure: BindFailure::EncryptionRequired,
            message: "dirsync refuses to send a password in clear: encryption is off and the integration does not allow insecure binds; enable encryption (LDAPS on 636, or StartTLS on 389), or set allow_insecure_bind".to_owned(),
        });
    }
    Ok(())
}

/// Connects to `endpoint` and binds.
pub async fn connect_host(target: &Target, endpoint: &Endpoint) -> Result<Session, LdapError> {
    refuse_insecure_bind(target)?;
    let mut session = open(target, endpoint).await?;
    session.bind(&target.bind_dn, &target.password).await?;
    Ok(session)
}

impl Session {
    /// A simple bind; AD's refusal codes become words.
    pub async fn bind(&mut self, dn: &str, password: &SecretString) -> Result<(), LdapError> {
        let password = password.expose_secret();
        if password.is_empty() {
            // An empty password is an anonymous bind on many servers.
            return Err(LdapError::Bind {
                failure: BindFailure::InvalidCredentials,
                message: "the bind password is empty".to_owned(),
            });
        }
        let timeout = self.timeouts.operation;
        let bind = self
            .ldap
            .with_timeout(timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|e| self.link.error(e, timeout))?;
        if bind.rc != 0 {
            let (failure, message) = describe_bind_failure(bind.rc, &bind.text, dn);
            return Err(LdapError::Bind { failure, message });
        }
        Ok(())
    }

    /// The server's certificate (DER), when the connection is TLS.
    pub async fn peer_certificate(&mut self) -> Option<Vec<u8>> {
        self.ldap.get_peer_certificate().await.ok().flatten()
    }

    /// Up to `n` email addresses under `root_dn`.
    pub async fn sample_addresses(
        &mut self,
        root_dn: &Dn,
        directory: &DirectorySchema,
        n: i32,
    ) -> Result<Vec<String>, LdapError> {
        let timeout = self.timeouts.operation;
        let mail = match directory {
            DirectorySchema::ActiveDirectory => "mail",
            DirectorySchema::Ldap(schema) => schema.attribute("mail").unwrap_or("mail"),
        };
        let filter = format!("({mail}=*)");
        let ldap3::SearchResult(entries, res) = self
            .ldap
            .with_timeout(timeout)
            .with_search_options(ldap3::SearchOptions::new().sizelimit(n))
            .search(root_dn.as_str(), Scope::Subtree, &filter, vec![mail])
            .await
            .map_err(|e| self.link.error(e, timeout))?;
        match res.rc {
            0 | 4 => {}
            32 => return Err(LdapError::RootDnNotFound(root_dn.to_string())),
            rc => return Err(LdapError::Search(format!("LDAP result {rc}: {}", res.text))),
        }
        Ok(entries
            .into_iter()
            .filter_map(|e| entry::RawEntry::read(e.0).ok())
            .filter_map(|e| {
                e.attrs
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(mail))
                    .and_then(|(_, m)| m.into_iter().next())
                    .map(|m| String::from_utf8_lossy(&m).into_owned())
            })
            .collect())
    }
}

fn describe_connect_error(e: &ldap3::LdapError) -> String {
    match e {
        ldap3::LdapError::Io { source } => {
            let text = source.to_string();
            let described = tls::describe_tls_error(&text);
            if described.starts_with("the certificate is not issued") {
                format!("{described}; use Relaxed mode or install a certificate from a trusted CA")
            } else {
                described
            }
        }
        other => other.to_string(),
    }
}

/// Maps an LDAP bind result to words an admin can act on.
pub fn describe_bind_failure(rc: u32, text: &str, bind_dn: &str) -> (BindFailure, String) {
    if rc == 8 {
        return (
            BindFailure::EncryptionRequired,
            "the domain controller requires an encrypted connection for this bind (strongerAuthRequired); enable encryption (LDAPS on 636, or StartTLS on 389)".to_owned(),
        );
    }
    let data = text
        .split("data ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_default()
        .to_lowercase();
    let (failure, what) = match (rc, data.as_str()) {
        (49, "52e") | (49, "525") => (
            BindFailure::InvalidCredentials,
            "the credentials were rejected: the user DN or password is wrong",
        ),
        (49, "533") => (BindFailure::AccountDisabled, "the bind account is disabled"),
        (49, "775") => (BindFailure::AccountLocked, "the bind account is locked out"),
        (49, "532") => (
            BindFailure::PasswordExpired,
            "the bind account's password has expired",
        ),
        (49, "773") => (
            BindFailure::PasswordMustChange,
            "the bind account must change its password before it can bind",
        ),
        (49, "701") => (BindFailure::AccountExpired, "the bind account has expired"),
        (49, _) => (
            BindFailure::InvalidCredentials,
            "the credentials were rejected",
        ),
        _ => (BindFailure::Other, "the bind failed"),
    };
    let code = if data.is_empty() {
        format!("LDAP result {rc}")
    } else {
        format!("AD data {data}")
    };
    (failure, format!("{what} ({code}; bind DN {bind_dn})"))
}

/// The LDAP filter of the objects dirsync syncs.
pub fn object_filter(include_contacts: bool) -> &'static str {
    if include_contacts {
        "(|(&(objectClass=user)(objectCategory=person))(objectClass=group)(objectClass=contact))"
    } else {
        "(|(&(objectClass=user)(objectCategory=person))(objectClass=group))"
    }
}

/// Controls of a paged search.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SearchControls {
    /// DN values as `<GUID=…>;…;DN` (1.2.840.113556.1.4.529).
    pub extended_dn: bool,
    /// Tombstones too (1.2.840.113556.1.4.417).
    pub show_deleted: bool,
}

/// How a collection ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectionSummary {
    pub entries: u64,
    pub referrals: u32,
    /// Empty when every object was read.
    pub incomplete_reasons: Vec<String>,
    /// What the run should say about how it read.
    pub notes: Vec<String>,
}

/// Values per `member;range=` request, below every server's cap.
pub const MEMBER_RANGE: u32 = 1000;

impl Session {
    /// Pages through `root_dn` and hands each entry to `sink` in directory
    /// order. Memory stays bounded: entries are not held.
    pub async fn collect<F, Fut>(
        &mut self,
        root_dn: &Dn,
        directory: &DirectorySchema,
        include_contacts: bool,
        page_size: i32,
        mut sink: F,
    ) -> Result<CollectionSummary, LdapError>
    where
        F: FnMut(DirectoryEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        let (filter, attrs) = match directory {
            DirectorySchema::ActiveDirectory => {
                // Ask for members in ranges from the start: Windows AD caps
                // a plain `member` at 1500 values; Samba honours explicit
                // ranges.
                let first_range = format!("member;range=0-{}", MEMBER_RANGE - 1);
                let attrs: Vec<String> = ATTRIBUTES
                    .iter()
                    .map(|a| {
                        if *a == "member" {
                            first_range.clone()
                        } else {
                            (*a).to_owned()
                        }
                    })
                    .collect();
                (object_filter(include_contacts).to_owned(), attrs)
            }
            DirectorySchema::Ldap(schema) => (
                schema.filter(include_contacts),
                schema.requested_attributes(),
            ),
        };
        let reader = EntryReader::new(directory);
        let mut skipped = Vec::new();
        let mut entries = 0;
        let mut summary = self
            .search_entries(
                root_dn.as_str(),
                &filter,
                attrs,
                SearchControls::default(),
                page_size,
                |entry| {
                    let read = match reader.read(entry) {
                        Ok(Some(e)) => {
                            entries += 1;
                            Some(sink(e))
                        }
                        Ok(None) => None,
                        Err(reason) => {
                            tracing::warn!(%reason, "directory entry skipped");
                            skipped.push(reason);
                            None
                        }
                    };
                    async move {
                        match read {
                            Some(sent) => sent.await,
                            None => Ok(()),
                        }
                    }
                },
            )
            .await?;
        summary.entries = entries;
        summary.incomplete_reasons.extend(skipped);
        Ok(summary)
    }

    /// Every entry `filter` finds under `base`, and why the search did not
    /// end complete, if it did not.
    pub(crate) async fn search_all(
        &mut self,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
        controls: SearchControls,
    ) -> Result<(Vec<RawEntry>, Vec<String>), LdapError> {
        let mut found = Vec::new();
        let summary = self
            .search_entries(base, filter, attrs, controls, 1000, |e| {
                found.push(e);
                std::future::ready(Ok(()))
            })
            .await?;
        Ok((found, summary.incomplete_reasons))
    }

    /// Pages through `base` for `filter` with `controls`, with each
    /// entry's member ranges completed (DN values as `<GUID=…>;…;DN` with
    /// the extended DN control), and hands each entry to `sink`. What could not be read is in the
    /// summary's reasons; its entry count is left to the caller.
    pub(crate) async fn search_entries<F, Fut>(
        &mut self,
        base: &str,
        filter: &str,
        attrs: Vec<String>,
        controls: SearchControls,
        page_size: i32,
        mut sink: F,
    ) -> Result<CollectionSummary, LdapError>
    where
        F: FnMut(RawEntry) -> Fut,
        Fut: std::future::Future<Output = Result<(), LdapError>>,
    {
        let mut summary = CollectionSummary::default();
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![Box::new(PagedResults::new(page_size))];
        let op_timeout = self.timeouts.operation;
        let mut ranged = self.ldap.clone();
        let mut ldap = self.ldap.clone();
        let search = ldap.with_timeout(op_timeout);
        let extended_dn = controls.extended_dn;
        let mut ctrls = Vec::new();
        if controls.extended_dn {
            ctrls.push(delta::extended_dn_control());
        }
        if controls.show_deleted {
            ctrls.push(delta::show_deleted_control());
        }
        if !ctrls.is_empty() {
            search.with_controls(ctrls);
        }
        let mut stream = search
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs)
            .await
            .map_err(|e| self.link.error(e, op_timeout))?;
        loop {
            let next = tokio::time::timeout(op_timeout, stream.next())
                .await
                .map_err(|_| LdapError::Timeout(op_timeout))?
                .map_err(|e| self.link.error(e, op_timeout))?;
            let Some(raw) = next else { break };
            if raw.is_ref() {
                summary.referrals += 1;
                continue;
            }
            if raw.is_intermediate() {
                continue;
            }
            let mut entry = match RawEntry::read(raw.0) {
                Ok(entry) => entry,
                Err(reason) => {
                    tracing::warn!(%reason, "directory entry skipped");
                    summary.incomplete_reasons.push(reason);
                    continue;
                }
            };
            complete_member_ranges(
                &mut ranged,
                &self.link,
                &mut entry,
                op_timeout,
                extended_dn,
                &mut summary,
            )
            .await?;
            sink(entry).await?;
        }
        let res = stream.finish().await;
        match res.rc {
            0 => {}
            32 => return Err(LdapError::RootDnNotFound(base.to_owned())),
            3 => summary
                .incomplete_reasons
                .push("the directory's time limit ended the search (timeLimitExceeded)".into()),
            4 => summary
                .incomplete_reasons
                .push("the directory's size limit ended the search (sizeLimitExceeded)".into()),
            10 => {
                summary.referrals += 1;
                summary.incomplete_reasons.push(format!(
                    "the directory answered with a referral: {:?}",
                    res.refs
                ));
            }
            51 | 52 => summary.incomplete_reasons.push(format!(
                "the directory is busy or unavailable (LDAP result {}): {}",
                res.rc, res.text
            )),
            rc => {
                return Err(LdapError::Search(format!(
                    "LDAP result {rc}: {}",
                    res.text.trim_end_matches('\0')
                )));
            }
        }
        Ok(summary)
    }

    pub async fn unbind(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Reads the rest of `member` when the server returned only a range
/// (`member;range=0-1499` on Windows AD).
async fn complete_member_ranges(
    ldap: &mut Ldap,
    link: &Link,
    entry: &mut RawEntry,
    timeout: Duration,
    extended_dn: bool,
    summary: &mut CollectionSummary,
) -> Result<(), LdapError> {
    let ranged = |(k, _): &(String, Vec<Vec<u8>>)| k.starts_with("member;range=");
    let Some(at) = entry.attrs.iter().position(ranged) else {
        return Ok(());
    };
    let (mut key, mut values) = entry.attrs.swap_remove(at);
    while let Some(next) = next_range_start(&key) {
        let attr = format!("member;range={next}-{}", next + MEMBER_RANGE - 1);
        let search = ldap.with_timeout(timeout);
        if extended_dn {
            search.with_controls(vec![delta::extended_dn_control()]);
        }
        let (results, _) = search
            .search(
                delta::split_extended_dn(&entry.dn).1,
                Scope::Base,
                "(objectClass=*)",
                vec![attr.as_str()],
            )
            .await
            .map_err(|e| link.error(e, timeout))?
            .success()
            .map_err(|e| link.error(e, timeout))?;
        let part = match results.into_iter().next().map(|r| RawEntry::read(r.0)) {
            Some(Ok(part)) => part,
            Some(Err(reason)) => {
                summary.incomplete_reasons.push(reason);
                break;
            }
            None => {
                summary.incomplete_reasons.push(format!(
                    "{}: member range {attr} returned nothing",
                    entry.dn
                ));
                break;
            }
        };
        let Some((k, v)) = part.attrs.into_iter().find(ranged) else {
            summary.incomplete_reasons.push(format!(
                "{}: member range {attr} returned no values",
                entry.dn
            ));
            break;
        };
        values.extend(v);
        key = k;
    }
    entry.attrs.push(("member".to_owned(), values));
    Ok(())
}

/// `member;range=0-1499` → Some(1500); `member;range=1500-*` → None.
fn next_range_start(key: &str) -> Option<u32> {
    let range = key.split_once('=')?.1;
    let (_, hi) = range.split_once('-')?;
    if hi == "*" {
        return None;
    }
    hi.parse::<u32>().ok().map(|h| h + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_failures_map_to_words() {
        let text = "80090308: LdapErr: DSID-0C09042F, comment: AcceptSecurityContext error, data 52e, v2580";
        let (f, m) = describe_bind_failure(49, text, "CN=x");
        assert_eq!(f, BindFailure::InvalidCredentials);
        assert!(m.contains("credentials were rejected") && m.contains("52e"));
        assert_eq!(
            describe_bind_failure(49, "… data 533, v1", "CN=x").0,
            BindFailure::AccountDisabled
        );
        assert_eq!(
            describe_bind_failure(49, "… data 775, v1", "CN=x").0,
            BindFailure::AccountLocked
        );
        let (f, m) = describe_bind_failure(8, "BindSimple: Transport encryption required.", "CN=x");
        assert_eq!(f, BindFailure::EncryptionRequired);
        assert!(m.contains("enable encryption"));
    }

    #[test]
    fn urls_and_ranges() {
        assert_eq!(
            url_of("dc1", 636, Some(EncryptionMode::Relaxed)),
            "ldaps://dc1:636"
        );
        assert_eq!(
            url_of("dc1", 389, Some(EncryptionMode::Strict)),
            "ldap://dc1:389"
        );
        assert_eq!(
            url_of("::1", 3269, Some(EncryptionMode::Strict)),
            "ldaps://[::1]:3269"
        );
        assert_eq!(url_of("dc1", 636, None), "ldap://dc1:636");
        assert_eq!(
            url_of("dc1", 3268, Some(EncryptionMode::Relaxed)),
            "ldap://dc1:3268"
        );
        assert_eq!(
            url_of("dc1", 10636, Some(EncryptionMode::Relaxed)),
            "ldaps://dc1:10636"
        );
        assert_eq!(next_range_start("member;range=0-1499"), Some(1500));
        assert_eq!(next_range_start("member;range=1500-*"), None);
    }
}
