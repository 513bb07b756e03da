//! Test harness: the real peers (Samba AD DC, NATS JetStream, PostgreSQL)
//! and dirsync in both shapes. A missing peer fails the test with a message
//! that says how to start it; nothing is skipped.
//!
//! `tests/run.sh` provisions the DC once per run and exports:
//! `DIRSYNC_TEST_AD_HOST`, `DIRSYNC_TEST_AD_BASE_DN`, `DIRSYNC_TEST_AD_ADMIN_DN`,
//! `DIRSYNC_TEST_AD_ADMIN_PASSWORD`, `DIRSYNC_TEST_AD_STRICT_HOST`,
//! `DIRSYNC_TEST_AD_WEAK_KEY_HOST`, `DIRSYNC_TEST_AD_CA_FILE`, `DIRSYNC_TEST_POSTGRES_URL`,
//! `DIRSYNC_TEST_NATS_URL`, and for the private OpenLDAP server
//! (deploy/local/slapd.sh) `DIRSYNC_TEST_LDAP_HOST`, `DIRSYNC_TEST_LDAP_SUFFIX`,
//! `DIRSYNC_TEST_LDAP_ADMIN_DN`, `DIRSYNC_TEST_LDAP_ADMIN_PASSWORD`,
//! `DIRSYNC_TEST_LDAP_SYNC_DN`, `DIRSYNC_TEST_LDAP_SYNC_PASSWORD`,
//! `DIRSYNC_TEST_LDAP_PLAIN_SUFFIX` (a database without syncprov). Each test
//! gets its own OU, database and NATS subject prefix.

#![allow(clippy::unwrap_used)]
// Tests wait on real services, in real time.
#![allow(clippy::disallowed_methods)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod faults;
pub mod hostile;

use rand::Rng;
use rustls::pki_types::ServerName;

use dirsync::cli::{Client, Target};
use dirsync::serve::{InProcess, ServeConfig};
use dirsync_core::{EncryptionMode, MasterKey};
use dirsync_proto::api;

/// Password of every fixture user (see deploy/local/fixture.ldif).
pub const FIXTURE_PASSWORD: &str = "Dirsync-User-1!";

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with `bash tests/run.sh`, which provisions the \
             Samba AD DC and starts NATS (JetStream) and PostgreSQL"
        )
    })
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A short random lower-case tag.
pub fn tag() -> String {
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The fixture directory, seeded into an OU of its own.
pub struct Fixture {
    pub ou: String,
    /// `OU=<ou>,DC=…`
    pub base: String,
    pub root_dn: String,
    pub bind_dn: String,
    /// The DC it lives on.
    pub host: String,
}

impl Fixture {
    /// Seeds the main DC (Samba's self-signed certificate).
    pub fn seed() -> Self {
        Self::seed_on(&env("DIRSYNC_TEST_AD_HOST"))
    }

    /// Seeds the DC at `host`.
    pub fn seed_on(host: &str) -> Self {
        let ou = format!("t{}", tag());
        let status = Command::new("bash")
            .arg(repo_root().join("deploy/local/samba-dc.sh"))
            .args(["seed", &ou, &ou[1..], host])
            .status()
            .expect("running samba-dc.sh seed");
        assert!(
            status.success(),
            "seeding OU={ou} into the Samba AD DC failed"
        );
        let base = format!("OU={ou},{}", env("DIRSYNC_TEST_AD_BASE_DN"));
        Self {
            root_dn: format!("OU=Sync,{base}"),
            bind_dn: format!("CN=Sync Reader,{base}"),
            ou,
            base,
            host: host.to_owned(),
        }
    }

    /// Settings of an integration that syncs this fixture.
    pub fn settings(&self, name: &str) -> api::IntegrationSettings {
        api::IntegrationSettings {
            name: name.to_owned(),
            description: "test fixture".to_owned(),
            r#type: api::DirectoryType::ActiveDirectory as i32,
            host: self.host.clone(),
            encrypt: Some(true),
            encryption_mode: api::EncryptionMode::Relaxed as i32,
            port: 636,
            user_dn: self.bind_dn.clone(),
            root_dn: self.root_dn.clone(),
            acknowledge_disabled_accounts: true,
            include_contacts: true,
            maximum_sync_deletions: 10,
            ..Default::default()
        }
    }

    /// Settings of an integration that syncs OU=bulk3000 (3000 contacts and
    /// a group of them, loaded once per DC), binding as this fixture's reader.
    pub fn bulk_settings(&self, name: &str) -> api::IntegrationSettings {
        api::IntegrationSettings {
            root_dn: format!("OU=bulk3000,{}", env("DIRSYNC_TEST_AD_BASE_DN")),
            ..self.settings(name)
        }
    }

    /// An administrator's LDAP connection, to change the directory.
    pub async fn admin(&self) -> ldap3::Ldap {
        let host = self.host.clone();
        let name = ServerName::try_from(host.clone()).unwrap();
        let config = dirsync_ldap::tls::client_config(EncryptionMode::Relaxed, &[], name).unwrap();
        let settings = ldap3::LdapConnSettings::new().set_config(config);
        let url = format!("ldaps://{host}:636");
        let (conn, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, &url)
            .await
            .expect("connecting to the Samba AD DC");
        ldap3::drive!(conn);
        ldap.simple_bind(
            &env("DIRSYNC_TEST_AD_ADMIN_DN"),
            &env("DIRSYNC_TEST_AD_ADMIN_PASSWORD"),
        )
        .await
        .unwrap()
        .success()
        .expect("binding as the AD administrator");
        ldap
    }

    /// Replaces (or, with `add`, adds) values of an attribute.
    pub async fn modify(&self, dn: &str, attr: &str, values: &[&str], add: bool) {
        let mut ldap = self.admin().await;
        let set: HashSet<&str> = values.iter().copied().collect();
        let m = if add {
            ldap3::Mod::Add(attr, set)
        } else {
            ldap3::Mod::Replace(attr, set)
        };
        ldap.modify(dn, vec![m])
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("modifying {dn}: {e}"));
    }
}

/// A small directory in an OU of its own on the private OpenLDAP server,
/// shaped as inetOrgPerson / groupOfNames:
///
/// - `ou=people`: alice (mail, an alternate address, R&D engineer), bob
///   (locked: `pwdAccountLockedTime`), carol (managed by alice)
/// - `ou=groups`: engineering (alice, carol; a mail address), all staff
///   (engineering, bob)
/// - `ou=devices`: a printer, which is not synced
pub struct LdapFixture {
    /// `ou=t<tag>,<suffix>`, the Root DN.
    pub base: String,
    /// The database's suffix: its admin and sync accounts are
    /// `cn=admin,<suffix>` and `cn=dirsync,<suffix>`.
    pub suffix: String,
}

impl LdapFixture {
    /// In the database with content synchronization (syncprov).
    pub async fn seed() -> Self {
        Self::seed_in(env("DIRSYNC_TEST_LDAP_SUFFIX")).await
    }

    /// In the database without content synchronization, as many servers
    /// are: delta syncs poll modifyTimestamp.
    pub async fn seed_plain() -> Self {
        Self::seed_in(env("DIRSYNC_TEST_LDAP_PLAIN_SUFFIX")).await
    }

    async fn seed_in(suffix: String) -> Self {
        let base = format!("ou=t{},{suffix}", tag());
        let fx = Self { base, suffix };
        let b = &fx.base;
        let people = format!("ou=people,{b}");
        let groups = format!("ou=groups,{b}");
        let ou = |name: &str| {
            vec![
                ("objectClass", vec!["organizationalUnit".to_owned()]),
                ("ou", vec![name.to_owned()]),
            ]
        };
        let entries: Vec<(String, Attrs)> = vec![
            (b.clone(), ou(b[3..].split(',').next().unwrap())),
            (people.clone(), ou("people")),
            (groups.clone(), ou("groups")),
            (format!("ou=devices,{b}"), ou("devices")),
            (
                format!("cn=printer,ou=devices,{b}"),
                vec![
                    ("objectClass", vec!["device".into()]),
                    ("cn", vec!["printer".into()]),
                ],
            ),
            (
                format!("uid=alice,{people}"),
                user("alice", "Alice", "Anders", "alice@example.com")
                    .into_iter()
                    .chain([
                        ("mailAlternateAddress", vec!["a.anders@example.com".into()]),
                        ("title", vec!["Engineer".into()]),
                        ("departmentNumber", vec!["R&D".into()]),
                    ])
                    .collect(),
            ),
            (
                format!("uid=bob,{people}"),
                user("bob", "Bob", "Brown", "bob@example.com")
                    .into_iter()
                    .chain([("pwdAccountLockedTime", vec!["000001010000Z".into()])])
                    .collect(),
            ),
            (
                format!("uid=carol,{people}"),
                user("carol", "Carol", "Chen", "carol@example.org")
                    .into_iter()
                    .chain([("manager", vec![format!("uid=alice,{people}")])])
                    .collect(),
            ),
            (
                format!("cn=engineering,{groups}"),
                vec![
                    (
                        "objectClass",
                        vec!["groupOfNames".into(), "mailRecipient".into()],
                    ),
                    ("cn", vec!["engineering".into()]),
                    ("mail", vec!["engineering@example.com".into()]),
                    (
                        "member",
                        vec![format!("uid=alice,{people}"), format!("uid=carol,{people}")],
                    ),
                ],
            ),
            (
                format!("cn=all staff,{groups}"),
                vec![
                    ("objectClass", vec!["groupOfNames".into()]),
                    ("cn", vec!["all staff".into()]),
                    (
                        "member",
                        vec![
                            format!("cn=engineering,{groups}"),
                            format!("uid=bob,{people}"),
                        ],
                    ),
                ],
            ),
        ];
        let mut ldap = fx.admin().await;
        for (dn, attrs) in entries {
            let attrs: Vec<(String, HashSet<String>)> = attrs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into_iter().collect()))
                .collect();
            // Relax Rules: pwdAccountLockedTime is an operational attribute.
            ldap.with_controls(ldap3::controls::MakeCritical::critical(
                ldap3::controls::RelaxRules,
            ))
            .add(&dn, attrs)
            .await
            .unwrap()
            .success()
            .unwrap_or_else(|e| panic!("adding {dn} to OpenLDAP: {e}"));
        }
        fx
    }

    pub fn people(&self) -> String {
        format!("ou=people,{}", self.base)
    }

    /// An integration of type LDAP with the default mapping, binding as
    /// the read-only sync account over plain LDAP.
    pub fn settings(&self, name: &str) -> api::IntegrationSettings {
        api::IntegrationSettings {
            name: name.to_owned(),
            description: "OpenLDAP test fixture".to_owned(),
            r#type: api::DirectoryType::Ldap as i32,
            host: env("DIRSYNC_TEST_LDAP_HOST"),
            encrypt: Some(false),
            // The private slapd offers no TLS.
            allow_insecure_bind: true,
            port: 389,
            user_dn: format!("cn=dirsync,{}", self.suffix),
            root_dn: self.base.clone(),
            acknowledge_disabled_accounts: true,
            include_contacts: true,
            maximum_sync_deletions: 10,
            ..Default::default()
        }
    }

    pub fn password() -> String {
        env("DIRSYNC_TEST_LDAP_SYNC_PASSWORD")
    }

    pub async fn admin(&self) -> ldap3::Ldap {
        let url = format!("ldap://{}:389", env("DIRSYNC_TEST_LDAP_HOST"));
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url)
            .await
            .expect("connecting to the private OpenLDAP server");
        ldap3::drive!(conn);
        ldap.simple_bind(
            &format!("cn=admin,{}", self.suffix),
            &env("DIRSYNC_TEST_LDAP_ADMIN_PASSWORD"),
        )
        .await
        .unwrap()
        .success()
        .expect("binding as the OpenLDAP administrator");
        ldap
    }
}

/// An entry's attributes and values.
type Attrs = Vec<(&'static str, Vec<String>)>;

/// An inetOrgPerson with a mail address and the fixture password.
fn user(uid: &str, given: &str, sur: &str, mail: &str) -> Attrs {
    vec![
        ("uid", vec![uid.into()]),
        (
            "objectClass",
            vec!["inetOrgPerson".into(), "mailRecipient".into()],
        ),
        ("cn", vec![format!("{given} {sur}")]),
        ("displayName", vec![format!("{given} {sur}")]),
        ("givenName", vec![given.into()]),
        ("sn", vec![sur.into()]),
        ("mail", vec![mail.into()]),
        ("userPassword", vec![FIXTURE_PASSWORD.into()]),
    ]
}

/// A fresh PostgreSQL database; returns its URL.
pub async fn postgres_database() -> String {
    use sqlx::Connection;
    let admin = env("DIRSYNC_TEST_POSTGRES_URL");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach PostgreSQL at {admin}: {e}; start it (tests/run.sh does)")
        });
    let name = format!("dirsync_t_{}", tag());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (prefix, _) = admin.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// A master key file in `dir`.
pub fn master_key_file(dir: &Path) -> PathBuf {
    let path = dir.join("master.key");
    std::fs::write(&path, MasterKey::generate_hex()).unwrap();
    path
}

/// dirsync in the embedded shape: every role in this process, SQLite, the
/// in-process bus.
pub struct Embedded {
    pub gateway: String,
    /// `http://127.0.0.1:PORT/` of the admin console.
    pub console: Option<String>,
    pub store: dirsync_store::Store,
    pub dir: tempfile::TempDir,
    inner: Option<InProcess>,
}

impl Embedded {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the configuration changed by `f`.
    pub async fn start_with(f: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ServeConfig::embedded(
            format!("sqlite://{}", dir.path().join("dirsync.db").display()),
            master_key_file(dir.path()),
        );
        f(&mut cfg);
        let inner = InProcess::start(&cfg).await.unwrap();
        Self {
            gateway: inner.gateway.clone(),
            console: inner.console.clone(),
            store: inner.store.clone(),
            dir,
            inner: Some(inner),
        }
    }

    /// A client with a new API token of `account`.
    pub async fn client(&self, account: &str) -> Client {
        client(&self.gateway, account, &self.token(account).await).await
    }

    /// A new API token of `account`.
    pub async fn token(&self, account: &str) -> String {
        dirsync::cli::issue_token(&self.store, account, "test", 0)
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.stop().await.unwrap();
        }
    }

    /// Stops dirsync, keeping its store and directory (for [`Embedded::reopen`]).
    pub async fn halt(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.stop().await.unwrap();
        }
    }

    /// Stops, and starts again on the same store and directory with the
    /// configuration of a fresh start changed by `f`; the start's error,
    /// if it fails (the store stays, stopped, for another try).
    pub async fn reopen(&mut self, f: impl FnOnce(&mut ServeConfig)) -> Result<(), String> {
        if let Some(inner) = self.inner.take() {
            inner.stop().await.unwrap();
        }
        let mut cfg = ServeConfig::embedded(
            format!("sqlite://{}", self.dir.path().join("dirsync.db").display()),
            self.dir.path().join("master.key"),
        );
        f(&mut cfg);
        let inner = InProcess::start(&cfg).await.map_err(|e| format!("{e:#}"))?;
        self.gateway = inner.gateway.clone();
        self.console = inner.console.clone();
        self.store = inner.store.clone();
        self.inner = Some(inner);
        Ok(())
    }
}

/// Waits for a gateway to accept connections.
pub async fn wait_for_gateway(gateway: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let endpoint = tonic::transport::Channel::from_shared(gateway.to_owned()).unwrap();
        if endpoint.connect().await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "gateway {gateway} not reachable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn client(gateway: &str, account: &str, token: &str) -> Client {
    let target = Target {
        gateway: gateway.to_owned(),
        account: account.to_owned(),
        token_file: None,
        token: Some(token.to_owned()),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Client::connect(&target).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("gateway {gateway} not reachable: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// dirsync in the distributed shape: the four roles as separate OS
/// processes on NATS JetStream and PostgreSQL.
pub struct Distributed {
    pub gateway: String,
    pub dir: tempfile::TempDir,
    children: Vec<(String, Child)>,
    database: String,
    /// Environment every process gets.
    env: Vec<(&'static str, String)>,
    /// Environment of one process (by name) over the common one.
    own_env: Vec<(String, &'static str, String)>,
}

pub fn dirsync_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DIRSYNC_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("dirsync");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p dirsync`; tests/run.sh does)",
        bin.display()
    );
    bin
}

impl Distributed {
    pub async fn start() -> Self {
        Self::start_with(&[None], 60).await
    }

    /// One collector process per entry of `collectors`, pinned to the
    /// partition given (`None`: every partition); deliveries not settled
    /// within `ack_wait_seconds` are delivered again.
    pub async fn start_with(collectors: &[Option<&str>], ack_wait_seconds: u64) -> Self {
        Self::start_logging(collectors, ack_wait_seconds, "info").await
    }

    /// One collector; every process exports its spans to the OTLP
    /// receiver at `endpoint` quickly.
    pub async fn start_traced(endpoint: &str) -> Self {
        Self::start_env(
            &[None],
            60,
            "info",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
                ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
                ("DIRSYNC_LOG_FORMAT", "json".to_owned()),
            ],
        )
        .await
    }

    /// As [`Distributed::start_with`], every process logging at `level`.
    pub async fn start_logging(
        collectors: &[Option<&str>],
        ack_wait_seconds: u64,
        level: &str,
    ) -> Self {
        Self::start_env(collectors, ack_wait_seconds, level, Vec::new()).await
    }

    /// As [`Distributed::start_logging`], with `extra` in every process's
    /// environment.
    pub async fn start_env(
        collectors: &[Option<&str>],
        ack_wait_seconds: u64,
        level: &str,
        extra: Vec<(&'static str, String)>,
    ) -> Self {
        Self::start_on(collectors, ack_wait_seconds, level, extra, None, None).await
    }

    /// As [`Distributed::start_env`], on the store at `database` and the
    /// NATS server at `nats` (default: a new database on the test
    /// PostgreSQL server, and the test NATS server).
    pub async fn start_on(
        collectors: &[Option<&str>],
        ack_wait_seconds: u64,
        level: &str,
        extra: Vec<(&'static str, String)>,
        database: Option<String>,
        nats: Option<String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = master_key_file(dir.path());
        let database = match database {
            Some(d) => d,
            None => postgres_database().await,
        };
        let nats = nats.unwrap_or_else(|| env("DIRSYNC_TEST_NATS_URL"));
        let prefix = format!("t_{}", tag());
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let listen = format!("127.0.0.1:{port}");
        let mut roles = vec![("gateway".to_owned(), "gateway", None)];
        roles.push(("scheduler".to_owned(), "scheduler", None));
        roles.extend(
            collectors
                .iter()
                .enumerate()
                .map(|(n, p)| (format!("collector-{n}"), "collector", *p)),
        );
        roles.push(("reconciler".to_owned(), "reconciler", None));
        let env = vec![
            ("DIRSYNC_LISTEN", listen.clone()),
            ("DIRSYNC_DATABASE_URL", database.clone()),
            ("DIRSYNC_NATS_URL", nats),
            ("DIRSYNC_SUBJECT_PREFIX", prefix),
            ("DIRSYNC_MASTER_KEY_FILE", key.display().to_string()),
            ("DIRSYNC_ACK_WAIT_SECONDS", ack_wait_seconds.to_string()),
            ("DIRSYNC_LOG", level.to_owned()),
        ];
        let env = env.into_iter().chain(extra).collect();
        let mut stack = Self {
            gateway: format!("http://{listen}"),
            dir,
            children: Vec::new(),
            database,
            env,
            own_env: Vec::new(),
        };
        // The gateway migrates the store first, so that the others find
        // the schema in place.
        for (name, role, partition) in roles {
            stack.spawn(&name, role, partition);
            if role == "gateway" {
                wait_for_gateway(&stack.gateway).await;
            }
        }
        stack
    }

    fn spawn(&mut self, name: &str, role: &str, partition: Option<&str>) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let mut command = Command::new(dirsync_binary());
        command.arg("serve").env("DIRSYNC_ROLES", role);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        for (_, k, v) in self.own_env.iter().filter(|(n, _, _)| n == name) {
            command.env(k, v);
        }
        if let Some(p) = partition {
            command.env("DIRSYNC_COLLECTOR_PARTITION", p);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((name.to_owned(), child));
    }

    /// Sets (or, with `None`, removes) variables of every process's
    /// environment, and restarts every process with them, the gateway
    /// first.
    pub async fn reconfigure(&mut self, vars: &[(&'static str, Option<String>)]) {
        for (name, value) in vars {
            self.env.retain(|(k, _)| k != name);
            if let Some(v) = value {
                self.env.push((name, v.clone()));
            }
        }
        let names: Vec<String> = self.children.iter().map(|(n, _)| n.clone()).collect();
        for n in &names {
            self.terminate(n, Duration::from_secs(30));
        }
        for n in &names {
            self.restart(n);
            if n == "gateway" {
                wait_for_gateway(&self.gateway).await;
            }
        }
    }

    /// The environment every process of the stack runs with.
    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// Starts a second gateway (`gateway-1`) on a port of its own; its
    /// URL. Restarted, it keeps the port.
    pub async fn add_gateway(&mut self) -> String {
        let listen = format!("127.0.0.1:{}", free_port());
        self.own_env
            .push(("gateway-1".to_owned(), "DIRSYNC_LISTEN", listen.clone()));
        self.own_env.push((
            "gateway-1".to_owned(),
            "DIRSYNC_CONSOLE_LISTEN",
            "off".to_owned(),
        ));
        self.spawn("gateway-1", "gateway", None);
        let url = format!("http://{listen}");
        wait_for_gateway(&url).await;
        url
    }

    /// Starts one more process of a role, named `role-N` (e.g.
    /// `reconciler-1`): its role is the part of the name before `-`.
    pub fn add(&mut self, name: &str) {
        let role = name.split('-').next().unwrap().to_owned();
        self.spawn(name, &role, None);
    }

    /// Starts a killed process again (e.g. `reconciler`, `collector-0`),
    /// appending to its log.
    pub fn restart(&mut self, name: &str) {
        self.children.retain(|(n, _)| n != name);
        let role = name.split('-').next().unwrap().to_owned();
        self.spawn(name, &role, None);
    }

    /// Sends SIGTERM to a process and waits for it to exit (at most
    /// `within`); returns whether it exited with status 0.
    pub fn terminate(&mut self, name: &str, within: Duration) -> bool {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILLs the process of a role (e.g. `collector-0`).
    pub fn kill(&mut self, name: &str) {
        let (_, child) = self
            .children
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The peak resident memory of a running process (VmHWM), in bytes.
    pub fn peak_rss(&self, name: &str) -> u64 {
        let (_, child) = self
            .children
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }

    /// The log of one process.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// A client with a new API token of `account`.
    pub async fn client(&self, account: &str) -> Client {
        let store = dirsync_store::connect(&self.database).await.unwrap();
        let token = dirsync::cli::issue_token(&store, account, "test", 0)
            .await
            .unwrap();
        client(&self.gateway, account, &token).await
    }

    /// The store's database URL.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The stack's bus, as its processes reach it.
    pub async fn bus(&self) -> dirsync_bus::Bus {
        let prefix = self
            .env
            .iter()
            .find(|(k, _)| *k == "DIRSYNC_SUBJECT_PREFIX")
            .map(|(_, v)| v.as_str())
            .expect("a subject prefix");
        dirsync_bus::Bus::nats(
            &env("DIRSYNC_TEST_NATS_URL"),
            prefix,
            Duration::from_secs(60),
            None,
        )
        .await
        .expect("the bus")
    }

    /// The logs of every role, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (role, _) in &self.children {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{role}.log")))
                .unwrap_or_default();
            out.push_str(&format!("----- {role} -----\n{text}\n"));
        }
        out
    }
}

impl Drop for Distributed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs a script of the console's tests (`tests/console/NAME.mjs`) with
/// Node.js and `vars`; fails with its output unless it passes. Its
/// screenshots go to `target/console-screenshots`.
pub fn run_console_script(name: &str, vars: &[(&str, String)]) {
    let dir = repo_root().join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "tests/console/node_modules is missing: run the tests with `bash tests/run.sh`, which \
         installs playwright-core (npm ci) and Debian's chromium"
    );
    let output = Command::new("node")
        .arg(dir.join(format!("{name}.mjs")))
        .current_dir(&dir)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env(
            "SCREENSHOT_DIR",
            repo_root().join("target/console-screenshots"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("running node (Debian package nodejs; tests/run.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{text}");
    assert!(
        output.status.success(),
        "tests/console/{name}.mjs failed:\n{text}"
    );
}

/// Creates an integration, returns it.
pub async fn create_integration(
    client: &mut Client,
    settings: api::IntegrationSettings,
    password: &str,
) -> api::Integration {
    client
        .integrations
        .create_integration(api::CreateIntegrationRequest {
            account_id: client.account.clone(),
            settings: Some(settings),
            password: password.to_owned(),
            ..Default::default()
        })
        .await
        .expect("CreateIntegration")
        .into_inner()
}

/// The run's counts: (collected, added, updated, removed, unchanged).
pub fn counts(run: &api::Run) -> (u64, u64, u64, u64, u64) {
    let c = run.counts.unwrap_or_default();
    (c.collected, c.added, c.updated, c.removed, c.unchanged)
}

/// Fails with the run's error and warnings unless it succeeded.
pub fn assert_succeeded(run: &api::Run) {
    assert_eq!(
        run.state,
        api::RunState::Succeeded as i32,
        "run failed: {} (warnings: {:?})",
        run.error,
        run.warnings
    );
}

/// Sync now, without waiting: the queued run.
pub async fn start_sync(client: &mut Client, integration: &str) -> api::Run {
    start_sync_kind(client, integration, api::RunKind::Full).await
}

/// Sync now of `kind`, without waiting: the queued run.
pub async fn start_sync_kind(
    client: &mut Client,
    integration: &str,
    kind: api::RunKind,
) -> api::Run {
    client
        .sync
        .sync_now(api::SyncNowRequest {
            account_id: client.account.clone(),
            integration: integration.to_owned(),
            kind: kind as i32,
        })
        .await
        .expect("SyncNow")
        .into_inner()
}

/// Sync now and wait for the run to settle (at most 60 s).
pub async fn sync(client: &mut Client, integration: &str) -> api::Run {
    sync_kind(client, integration, api::RunKind::Full).await
}

/// A delta sync now, waited for (at most 60 s).
pub async fn sync_delta(client: &mut Client, integration: &str) -> api::Run {
    sync_kind(client, integration, api::RunKind::Delta).await
}

async fn sync_kind(client: &mut Client, integration: &str, kind: api::RunKind) -> api::Run {
    let run = start_sync_kind(client, integration, kind).await;
    tokio::time::timeout(Duration::from_secs(60), client.wait(&run.id))
        .await
        .expect("the run did not settle within 60 s")
        .expect("GetRun")
}

/// The synced directory in a comparable form.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// (display name, primary, aliases, disabled, managed)
    pub users: Vec<(String, String, Vec<String>, bool, bool)>,
    /// (display name, primary, member display names sorted)
    pub groups: Vec<(String, String, Vec<String>)>,
    /// (display name, primary)
    pub contacts: Vec<(String, String)>,
}

pub async fn snapshot(client: &mut Client) -> (Snapshot, Vec<api::DirectoryObject>) {
    let req = || api::ListObjectsRequest {
        account_id: client.account.clone(),
        ..Default::default()
    };
    let users = client
        .directory
        .list_users(req())
        .await
        .unwrap()
        .into_inner()
        .objects;
    let groups = client
        .directory
        .list_groups(req())
        .await
        .unwrap()
        .into_inner()
        .objects;
    let contacts = client
        .directory
        .list_contacts(req())
        .await
        .unwrap()
        .into_inner()
        .objects;
    let all: Vec<api::DirectoryObject> = users
        .iter()
        .chain(&groups)
        .chain(&contacts)
        .cloned()
        .collect();
    let name_of = |id: &String| {
        all.iter()
            .find(|o| &o.id == id)
            .map(|o| o.display_name.clone())
            .unwrap_or_else(|| format!("<unknown {id}>"))
    };
    let snap = Snapshot {
        users: users
            .iter()
            .map(|u| {
                (
                    u.display_name.clone(),
                    u.primary_address.clone(),
                    u.aliases.clone(),
                    u.disabled,
                    u.managed,
                )
            })
            .collect(),
        groups: groups
            .iter()
            .map(|g| {
                let mut members: Vec<String> = g.member_ids.iter().map(name_of).collect();
                members.sort();
                (g.display_name.clone(), g.primary_address.clone(), members)
            })
            .collect(),
        contacts: contacts
            .iter()
            .map(|c| (c.display_name.clone(), c.primary_address.clone()))
            .collect(),
    };
    (snap, all)
}

/// What the fixture directory syncs to with the settings of
/// [`Fixture::settings`].
pub fn expected_fixture() -> Snapshot {
    let s = |x: &str| x.to_owned();
    Snapshot {
        users: vec![
            (
                s("Alice Anders"),
                s("alice@example.com"),
                vec![s("a.anders@example.com"), s("alice@example.org")],
                false,
                true,
            ),
            (s("Bob Brown"), s("bob@example.com"), vec![], true, true),
            (s("Carol Chen"), s("carol@example.org"), vec![], false, true),
            (
                s("Smith, Erin"),
                s("erin.smith@example.com"),
                vec![s("erin@example.com")],
                false,
                true,
            ),
            (s("Zoë Ærø"), s("zoe@example.com"), vec![], false, true),
        ],
        groups: vec![
            (
                s("All Staff"),
                s(""),
                vec![
                    s("Bob Brown"),
                    s("Engineering"),
                    s("Vendor Contact"),
                    s("Zoë Ærø"),
                ],
            ),
            (
                s("Engineering"),
                s("engineering@example.com"),
                vec![s("Alice Anders"), s("Carol Chen"), s("Smith, Erin")],
            ),
        ],
        contacts: vec![(s("Vendor Contact"), s("vendor@partner.example.net"))],
    }
}

/// One line of RELIABILITY.md: a fault or a bad input a test injected,
/// and what held. Written by the test that ran it, to
/// `target/reliability/<scenario>.json`, from which
/// `tests/reliability/report.py` writes the table.
#[derive(Debug, Clone, Default)]
pub struct Reliability {
    /// What was tried, e.g. "PostgreSQL restarted mid-apply".
    pub scenario: String,
    /// How it was injected.
    pub injected: String,
    /// How many times.
    pub times: u32,
    /// Runs that settled (succeeded, failed or blocked) of those started.
    pub runs_settled: (u32, u32),
    /// Objects compared with the expected directory at the end.
    pub objects_compared: usize,
    /// Objects stored twice (or changes applied twice).
    pub duplicates: usize,
    /// Objects, edges or changes lost.
    pub lost: usize,
    /// Seconds from the fault to the next settled run, the longest.
    pub recovery_seconds: f64,
    /// What held, in words.
    pub held: String,
}

impl Reliability {
    /// Records the scenario (and prints it with the test's output).
    pub fn record(&self) {
        let json = serde_json::json!({
            "scenario": self.scenario,
            "injected": self.injected,
            "times": self.times,
            "runs_settled": [self.runs_settled.0, self.runs_settled.1],
            "objects_compared": self.objects_compared,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "recovery_seconds": (self.recovery_seconds * 10.0).round() / 10.0,
            "held": self.held,
        });
        println!("reliability: {json}");
        let dir = repo_root().join("target/reliability");
        std::fs::create_dir_all(&dir).unwrap();
        let name: String = self
            .scenario
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        std::fs::write(dir.join(format!("{name}.json")), json.to_string()).unwrap();
    }
}
