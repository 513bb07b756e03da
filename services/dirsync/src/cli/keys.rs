//! `dirsync key`: master keys. Generate one, re-seal every stored bind
//! password under a new one (`rotate`: online, resumable), and see which
//! keys still seal something (`status`): a key may be retired only when
//! nothing sealed under it remains.

use std::path::{Path, PathBuf};

use anyhow::Context;

use dirsync_core::secret::password_aad;
use dirsync_core::{Keyring, MasterKey};
use dirsync_store::Store;

use super::StoreArgs;

#[derive(Debug, clap::Subcommand)]
pub enum KeyCmd {
    /// Write a new random master key to FILE (mode 0600).
    Generate { file: PathBuf },
    /// Re-seal every stored bind password under the master key of
    /// --master-key-file, opening each with the key that sealed it (given
    /// with --previous-master-key-file). Safe while dirsync runs, once
    /// every process loads the new key as current and the old one as
    /// previous; safe to run again after an interruption.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keys: KeyFiles,
    },
    /// How many bind passwords each master key seals, and which loaded
    /// keys can be retired.
    Status {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        keys: KeyFiles,
    },
}

/// The master keys a key command loads, as `dirsync serve` takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyFiles {
    /// The current master key: what passwords are re-sealed under.
    #[arg(long, env = "DIRSYNC_MASTER_KEY_FILE")]
    pub master_key_file: PathBuf,
    /// Earlier master keys, which open what they sealed.
    #[arg(
        long = "previous-master-key-file",
        env = "DIRSYNC_PREVIOUS_MASTER_KEY_FILES",
        value_delimiter = ','
    )]
    pub previous_master_key_files: Vec<PathBuf>,
}

impl KeyFiles {
    fn load(&self) -> anyhow::Result<Keyring> {
        Keyring::from_files(&self.master_key_file, &self.previous_master_key_files)
            .context("loading the master keys")
    }
}

pub async fn run(cmd: KeyCmd) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        KeyCmd::Generate { file } => {
            write_key(&file)?;
            println!("master key written to {}", file.display());
        }
        KeyCmd::Rotate { store, keys } => {
            let keys = keys.load()?;
            let store = crate::cli::open_store(&store).await?;
            let outcome = rotate(&store, &keys).await?;
            println!(
                "re-sealed {} bind passwords under master key {}",
                outcome.resealed,
                keys.id()
            );
            if outcome.changed_meanwhile > 0 {
                println!(
                    "{} were changed by an edit meanwhile and left as the edit wrote them; run `dirsync key rotate` again",
                    outcome.changed_meanwhile
                );
            }
            for (integration, why) in &outcome.failed {
                eprintln!("integration {integration}: {why}");
            }
            print_status(&store, &keys).await?;
            if !outcome.failed.is_empty() {
                anyhow::bail!(
                    "{} bind passwords could not be re-sealed; load the keys they were sealed with and run again",
                    outcome.failed.len()
                );
            }
        }
        KeyCmd::Status { store, keys } => {
            let keys = keys.load()?;
            let store = crate::cli::open_store(&store).await?;
            print_status(&store, &keys).await?;
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    pub resealed: usize,
    /// Edited between read and write: the edit's seal stands.
    pub changed_meanwhile: usize,
    /// (integration id, why) of those that could not be opened.
    pub failed: Vec<(String, String)>,
}

/// Re-seals every stored bind password not sealed under the current key.
/// Each is written on its own, only while it is still what was read, so
/// the rotation can stop anywhere and run again, and never undoes an
/// edit made meanwhile.
pub async fn rotate(store: &Store, keys: &Keyring) -> anyhow::Result<Rotation> {
    let mut out = Rotation::default();
    for rec in store.passwords_not_sealed_with(keys.id()).await? {
        let Some(sealed) = &rec.password else {
            continue;
        };
        let aad = password_aad(&rec.account_id, &rec.id);
        let resealed = match keys.reseal(sealed, &aad) {
            Ok(s) => s,
            Err(e) => {
                out.failed.push((rec.id.clone(), e.to_string()));
                continue;
            }
        };
        if store
            .reseal_password(&rec.account_id, &rec.id, sealed, &resealed)
            .await?
        {
            out.resealed += 1;
        } else {
            out.changed_meanwhile += 1;
        }
    }
    Ok(out)
}

async fn print_status(store: &Store, keys: &Keyring) -> anyhow::Result<()> {
    let counts = store.password_key_counts().await?;
    let sealing = |id: &str| counts.iter().find(|(k, _)| k == id).map_or(0, |(_, n)| *n);
    for id in keys.ids() {
        let n = sealing(id);
        let role = if id == keys.id() {
            "current"
        } else {
            "previous"
        };
        let note = match (id == keys.id(), n) {
            (true, _) => "",
            (false, 0) => "; nothing sealed under it remains: it can be retired",
            (false, _) => "; still in use: run `dirsync key rotate`",
        };
        println!("key {id} ({role}): seals {n} bind passwords{note}");
    }
    for (id, n) in counts.iter().filter(|(id, _)| !keys.holds(id)) {
        println!("key {id} (not loaded): seals {n} bind passwords; load it to re-seal them");
    }
    Ok(())
}

/// Writes a new random key, readable by its owner only.
pub fn write_key(path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    writeln!(f, "{}", MasterKey::generate_hex())?;
    Ok(())
}
