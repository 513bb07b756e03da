//! Runs dirsync's roles, in any combination, in this process.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use dirsync_bus::Bus;
use dirsync_collector::Collector;
use dirsync_core::{Clock, Keyring, SystemClock};
use dirsync_gateway::{ConsoleConfig, Gateway};
use dirsync_ldap::Timeouts;
use dirsync_reconciler::Reconciler;
use dirsync_scheduler::{Scheduler, Timing};
use dirsync_store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Gateway,
    Scheduler,
    Collector,
    Reconciler,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "gateway" => Self::Gateway,
            "scheduler" => Self::Scheduler,
            "collector" => Self::Collector,
            "reconciler" => Self::Reconciler,
            other => {
                return Err(format!(
                    "unknown role {other:?}; use gateway, scheduler, collector, reconciler or all"
                ));
            }
        })
    }
}

/// Worker threads for a process of `roles`; `None`: Tokio's default, one
/// per core. A collector or a reconciler on its own handles one job or
/// event at a time: on one thread it is spared the hand-offs between
/// threads (in a million-object resync, about 40% of the collector's
/// CPU), and the reconciler's freed memory stays in one allocator heap.
pub fn worker_threads(roles: &BTreeSet<Role>) -> Option<usize> {
    let alone =
        roles.len() == 1 && (roles.contains(&Role::Collector) || roles.contains(&Role::Reconciler));
    alone.then_some(1)
}

/// Parses `all` or a comma-separated list of roles.
pub fn parse_roles(s: &str) -> Result<BTreeSet<Role>, String> {
    if s == "all" {
        return Ok([
            Role::Gateway,
            Role::Scheduler,
            Role::Collector,
            Role::Reconciler,
        ]
        .into());
    }
    s.split(',').map(|r| r.trim().parse()).collect()
}

/// Settings of `dirsync serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Roles to run: all, or a comma-separated list of gateway, scheduler,
    /// collector, reconciler.
    #[arg(long, env = "DIRSYNC_ROLES", default_value = "all", value_parser = parse_roles)]
    pub roles: BTreeSet<Role>,
    /// Address the gateway listens on.
    #[arg(long, env = "DIRSYNC_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// Store: postgres://… or sqlite://FILE.
    #[arg(
        long,
        env = "DIRSYNC_DATABASE_URL",
        default_value = "sqlite://.dirsync/dirsync.db"
    )]
    pub database_url: String,
    /// A file holding the store URL (e.g. a mounted Secret); wins over
    /// --database-url, so the password stays out of the environment.
    #[arg(long, env = "DIRSYNC_DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,
    /// NATS credentials file (.creds) for an authenticated NATS server.
    #[arg(long, env = "DIRSYNC_NATS_CREDENTIALS_FILE")]
    pub nats_credentials_file: Option<PathBuf>,
    /// NATS server with JetStream. Absent: the in-process bus (all roles
    /// must then run in this process).
    #[arg(long, env = "DIRSYNC_NATS_URL")]
    pub nats_url: Option<String>,
    /// Prefix of every NATS subject and stream.
    #[arg(long, env = "DIRSYNC_SUBJECT_PREFIX", default_value = "dirsync")]
    pub subject_prefix: String,
    /// File holding the 256-bit master key (64 hex characters) that seals
    /// bind passwords.
    #[arg(long, env = "DIRSYNC_MASTER_KEY_FILE")]
    pub master_key_file: PathBuf,
    /// Files of earlier master keys, which open what they sealed until
    /// `dirsync key rotate` has re-sealed it under the current key
    /// (comma-separated in the environment).
    #[arg(
        long = "previous-master-key-file",
        env = "DIRSYNC_PREVIOUS_MASTER_KEY_FILES",
        value_delimiter = ','
    )]
    pub previous_master_key_files: Vec<PathBuf>,
    /// Seconds a delivered message may stay unsettled before the bus
    /// delivers it again (a collector that died mid-run).
    #[arg(long, env = "DIRSYNC_ACK_WAIT_SECONDS", default_value_t = 60)]
    pub ack_wait_seconds: u64,
    /// Collector: seconds to wait for a domain controller to accept a
    /// connection and complete the TLS handshake.
    #[arg(
        long,
        env = "DIRSYNC_LDAP_CONNECT_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub ldap_connect_timeout_seconds: u64,
    /// Collector: seconds to wait for a bind or for each page of results.
    #[arg(
        long,
        env = "DIRSYNC_LDAP_OPERATION_TIMEOUT_SECONDS",
        default_value_t = 60
    )]
    pub ldap_operation_timeout_seconds: u64,
    /// Scheduler: seconds between looks for due slots and stuck runs.
    #[arg(long, env = "DIRSYNC_SCHEDULE_TICK_SECONDS", default_value_t = 30)]
    pub schedule_tick_seconds: u64,
    /// Scheduler: seconds between delta syncs of every integration with
    /// deltas on, instead of each one's delta_interval_minutes (for
    /// sub-minute freshness, with a tick as short); 0: each integration's
    /// own.
    #[arg(long, env = "DIRSYNC_DELTA_INTERVAL_SECONDS", default_value_t = 0)]
    pub delta_interval_seconds: u64,
    /// Scheduler: a slot missed while no scheduler ran is run on start when
    /// it is at most this old.
    #[arg(long, env = "DIRSYNC_CATCH_UP_HORIZON_MINUTES", default_value_t = 360)]
    pub catch_up_horizon_minutes: u64,
    /// Scheduler: a run still active after this long fails, freeing its
    /// integration.
    #[arg(long, env = "DIRSYNC_MAX_RUN_MINUTES", default_value_t = 120)]
    pub max_run_minutes: u64,
    /// Serve grpc.health.v1 for probes on this address: service
    /// "liveness" while the process runs, "readiness" while the store and
    /// the bus answer (and not once shutdown began).
    #[arg(long, env = "DIRSYNC_HEALTH_LISTEN")]
    pub health_listen: Option<String>,
    /// Serve Prometheus metrics on `http://ADDR/metrics`.
    #[arg(long, env = "DIRSYNC_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Gateway: serve gRPC server reflection.
    #[arg(long, env = "DIRSYNC_GRPC_REFLECTION")]
    pub grpc_reflection: bool,
    /// Collector: the partition (domain) to serve; absent: all.
    #[arg(long, env = "DIRSYNC_COLLECTOR_PARTITION")]
    pub partition: Option<String>,
    /// Collector: PEM file of CA certificates trusted in Strict mode in
    /// addition to the system's roots.
    #[arg(long, env = "DIRSYNC_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// Gateway: serve the web admin console on this address, or `off`.
    /// Default: 127.0.0.1:8080 in the embedded shape (every role, no
    /// --nats-url), off otherwise.
    #[arg(long, env = "DIRSYNC_CONSOLE_LISTEN")]
    pub console_listen: Option<String>,
    /// Gateway: mark the console's session cookie Secure, for a console
    /// that browsers reach over HTTPS (e.g. through a TLS ingress).
    #[arg(long, env = "DIRSYNC_CONSOLE_SECURE_COOKIES")]
    pub console_secure_cookies: bool,
}

/// The console's address in the embedded shape unless told otherwise.
pub const EMBEDDED_CONSOLE_LISTEN: &str = "127.0.0.1:8080";

impl ServeConfig {
    /// Every role in one process on the in-process bus, with the defaults
    /// of the command line: the embedded shape.
    pub fn embedded(database_url: String, master_key_file: PathBuf) -> Self {
        Self {
            roles: parse_roles("all").unwrap_or_default(),
            listen: "127.0.0.1:0".to_owned(),
            database_url,
            database_url_file: None,
            nats_url: None,
            nats_credentials_file: None,
            subject_prefix: "dirsync".to_owned(),
            master_key_file,
            previous_master_key_files: Vec::new(),
            ack_wait_seconds: 60,
            ldap_connect_timeout_seconds: 10,
            ldap_operation_timeout_seconds: 60,
            schedule_tick_seconds: 30,
            delta_interval_seconds: 0,
            catch_up_horizon_minutes: 360,
            max_run_minutes: 120,
            health_listen: None,
            metrics_listen: None,
            grpc_reflection: false,
            partition: None,
            ca_bundle: None,
            console_listen: Some("127.0.0.1:0".to_owned()),
            console_secure_cookies: false,
        }
    }

    /// Where the gateway serves the admin console, if it does.
    pub fn console_addr(&self) -> Option<&str> {
        match self.console_listen.as_deref() {
            _ if !self.roles.contains(&Role::Gateway) => None,
            Some("off") => None,
            Some(addr) => Some(addr),
            None if self.nats_url.is_none() && self.roles.len() == 4 => {
                Some(EMBEDDED_CONSOLE_LISTEN)
            }
            None => None,
        }
    }
}

/// Connections shared by the roles of one process.
pub struct Deps {
    pub store: Option<Store>,
    pub grpc_reflection: bool,
    pub timing: Timing,
    pub ldap_timeouts: Timeouts,
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub bus: Bus,
    pub keys: Arc<Keyring>,
    pub clock: Arc<dyn Clock>,
    pub console: ConsoleConfig,
}

impl Deps {
    pub async fn open(cfg: &ServeConfig) -> anyhow::Result<Self> {
        let keys = Arc::new(
            Keyring::from_files(&cfg.master_key_file, &cfg.previous_master_key_files)
                .context("loading the master keys")?,
        );
        let bus = match &cfg.nats_url {
            Some(url) => {
                Bus::nats(
                    url,
                    &cfg.subject_prefix,
                    Duration::from_secs(cfg.ack_wait_seconds.max(1)),
                    cfg.nats_credentials_file.as_deref(),
                )
                .await?
            }
            None if cfg.roles.len() == 4 => Bus::in_process(),
            None => {
                bail!("--nats-url is required unless every role runs in this process (--roles all)")
            }
        };
        let needs_store = cfg.roles.iter().any(|r| *r != Role::Collector);
        let store = if needs_store {
            if let Some(path) = cfg.database_url.strip_prefix("sqlite://")
                && let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let url = match &cfg.database_url_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading the store URL from {}", path.display()))?
                    .trim()
                    .to_owned(),
                None => cfg.database_url.clone(),
            };
            let store = dirsync_store::connect(&url).await?;
            // A missing master key stops start-up, before any run fails
            // on it: a key is retired only once nothing sealed under it
            // remains.
            let foreign: Vec<String> = store
                .password_key_ids()
                .await?
                .into_iter()
                .filter(|id| !keys.holds(id))
                .collect();
            if !foreign.is_empty() {
                bail!(
                    "stored bind passwords are sealed with master key {}, which none of the keys loaded is ({}: {}); load it with --previous-master-key-file until `dirsync key rotate` has re-sealed them",
                    foreign.join(", "),
                    cfg.master_key_file.display(),
                    keys.ids().join(", ")
                );
            }
            Some(store)
        } else {
            None
        };
        let extra_roots = match &cfg.ca_bundle {
            Some(path) => dirsync_ldap::tls::load_ca_bundle(path).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        Ok(Self {
            store,
            grpc_reflection: cfg.grpc_reflection,
            timing: Timing {
                tick: Duration::from_secs(cfg.schedule_tick_seconds.max(1)),
                catch_up_horizon: Duration::from_secs(cfg.catch_up_horizon_minutes * 60),
                max_run_duration: Duration::from_secs(cfg.max_run_minutes.max(1) * 60),
                delta_interval: (cfg.delta_interval_seconds > 0)
                    .then(|| Duration::from_secs(cfg.delta_interval_seconds)),
            },
            ldap_timeouts: Timeouts {
                connect: Duration::from_secs(cfg.ldap_connect_timeout_seconds.max(1)),
                operation: Duration::from_secs(cfg.ldap_operation_timeout_seconds.max(1)),
            },
            extra_roots,
            bus,
            keys,
            clock: Arc::new(SystemClock),
            console: ConsoleConfig {
                secure_cookies: cfg.console_secure_cookies,
                ..ConsoleConfig::default()
            },
        })
    }
}

/// Where the roles of a process listen.
#[derive(Default)]
pub struct Listeners {
    /// The gRPC API (the gateway role).
    pub gateway: Option<TcpListener>,
    /// The admin console (the gateway role).
    pub console: Option<TcpListener>,
    pub health: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds what `cfg` asks for.
    pub async fn bind(cfg: &ServeConfig) -> anyhow::Result<Self> {
        let gateway = cfg
            .roles
            .contains(&Role::Gateway)
            .then_some(cfg.listen.as_str());
        Ok(Self {
            gateway: bind(gateway, "the gRPC API").await?,
            console: bind(cfg.console_addr(), "the admin console").await?,
            health: bind(cfg.health_listen.as_deref(), "health checks").await?,
            metrics: bind(cfg.metrics_listen.as_deref(), "metrics").await?,
        })
    }

    fn url(listener: Option<&TcpListener>, path: &str) -> anyhow::Result<Option<String>> {
        Ok(match listener {
            Some(l) => Some(format!("http://{}{path}", l.local_addr()?)),
            None => None,
        })
    }
}

/// Runs `roles` until `shutdown` is cancelled or one of them fails.
pub async fn run(
    roles: BTreeSet<Role>,
    deps: Deps,
    listeners: Listeners,
    partition: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Listeners {
        gateway: mut listener,
        mut console,
        health,
        metrics,
    } = listeners;
    let mut tasks = JoinSet::new();
    if let Some(metrics) = metrics {
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let served = dirsync_telemetry::metrics::serve(metrics, stop).await;
            ("metrics", served.map_err(anyhow::Error::from))
        });
    }
    if let Some(health) = health {
        let (store, bus, stop) = (deps.store.clone(), deps.bus.clone(), shutdown.clone());
        tasks.spawn(async move { ("health", serve_health(health, store, bus, stop).await) });
    }
    let store = || deps.store.clone().context("this role needs the store");
    for role in &roles {
        let stop = shutdown.clone();
        match role {
            Role::Gateway => {
                let gw = Gateway {
                    store: store()?,
                    bus: deps.bus.clone(),
                    keys: deps.keys.clone(),
                    clock: deps.clock.clone(),
                    extra_roots: deps.extra_roots.clone(),
                    ldap_timeouts: deps.ldap_timeouts,
                    reflection: deps.grpc_reflection,
                };
                let listener = listener
                    .take()
                    .context("the gateway role needs a listener")?;
                if let Some(console) = console.take() {
                    let (gw, config, stop) = (gw.clone(), deps.console.clone(), stop.clone());
                    tasks.spawn(async move {
                        ("console", gw.serve_console(console, config, stop).await)
                    });
                }
                tasks.spawn(async move { ("gateway", gw.serve(listener, stop).await) });
            }
            Role::Scheduler => {
                let s = Scheduler {
                    store: store()?,
                    bus: deps.bus.clone(),
                    clock: deps.clock.clone(),
                    timing: deps.timing,
                };
                tasks.spawn(async move { ("scheduler", s.run(stop).await) });
            }
            Role::Collector => {
                let c = Collector {
                    bus: deps.bus.clone(),
                    keys: deps.keys.clone(),
                    partition: partition.clone(),
                    timeouts: deps.ldap_timeouts,
                    extra_roots: deps.extra_roots.clone(),
                    clock: deps.clock.clone(),
                };
                tasks.spawn(async move { ("collector", c.run(stop).await) });
            }
            Role::Reconciler => {
                let r = Reconciler::new(store()?, deps.bus.clone(), deps.clock.clone());
                tasks.spawn(async move { ("reconciler", r.run(stop).await) });
            }
        }
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.context("a role panicked")?;
        if let Err(e) = result {
            tracing::error!(role = name, error = %e, "role failed; stopping");
            shutdown.cancel();
            first_error.get_or_insert(e.context(format!("{name} failed")));
        } else if !shutdown.is_cancelled() {
            shutdown.cancel();
            first_error.get_or_insert(anyhow::anyhow!("{name} stopped unexpectedly"));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Every role of `cfg` running in this process, in the background: the
/// embedded shape for the demo and for tests.
pub struct InProcess {
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway: String,
    /// `http://127.0.0.1:PORT/` of the admin console, when it is served.
    pub console: Option<String>,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub async fn start(cfg: &ServeConfig) -> anyhow::Result<Self> {
        let deps = Deps::open(cfg).await?;
        let store = deps
            .store
            .clone()
            .context("the embedded shape needs the store")?;
        let clock = deps.clock.clone();
        let listeners = Listeners::bind(cfg).await?;
        let gateway = Listeners::url(listeners.gateway.as_ref(), "")?
            .context("the embedded shape runs the gateway role")?;
        let console_url = Listeners::url(listeners.console.as_ref(), "/")?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            cfg.roles.clone(),
            deps,
            listeners,
            cfg.partition.clone(),
            shutdown.clone(),
        ));
        Ok(Self {
            gateway,
            console: console_url,
            store,
            clock,
            shutdown,
            task,
        })
    }

    /// Stops every role and waits for them.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.context("a role panicked")?
    }
}

/// `dirsync serve`: opens the dependencies, binds the listener, runs.
pub async fn serve(cfg: ServeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let deps = Deps::open(&cfg).await?;
    let listeners = Listeners::bind(&cfg).await?;
    if let Some(url) = Listeners::url(listeners.console.as_ref(), "/")? {
        tracing::info!("admin console: {url}");
    }
    run(
        cfg.roles.clone(),
        deps,
        listeners,
        cfg.partition.clone(),
        shutdown,
    )
    .await
}

async fn bind(addr: Option<&str>, what: &str) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => {
            Ok(Some(TcpListener::bind(addr).await.with_context(|| {
                format!("listening for {what} on {addr}")
            })?))
        }
        None => Ok(None),
    }
}

/// grpc.health.v1 for Kubernetes probes: "liveness" while the process
/// runs; "readiness" while the store (when this process uses one) and the
/// bus answer, NOT_SERVING from the moment shutdown begins.
async fn serve_health(
    listener: TcpListener,
    store: Option<Store>,
    bus: Bus,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("liveness", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("readiness", ServingStatus::NotServing)
        .await;
    let watch = {
        let shutdown = shutdown.clone();
        async move {
            loop {
                let store_ok = match &store {
                    Some(s) => s.healthy().await,
                    None => true,
                };
                let ready = store_ok && bus.healthy().await;
                let status = if ready {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter.set_service_status("readiness", status).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
            reporter
                .set_service_status("readiness", ServingStatus::NotServing)
                .await;
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown.cancelled_owned(),
        );
    let (served, ()) = tokio::join!(server, watch);
    served?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_roles, worker_threads};

    #[test]
    fn a_pipeline_role_alone_runs_on_one_thread() {
        let threads = |roles: &str| worker_threads(&parse_roles(roles).expect("roles"));
        assert_eq!(threads("collector"), Some(1));
        assert_eq!(threads("reconciler"), Some(1));
        assert_eq!(threads("gateway"), None);
        assert_eq!(threads("collector,reconciler"), None);
        assert_eq!(threads("all"), None);
    }
}
