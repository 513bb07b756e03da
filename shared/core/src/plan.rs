//! The sync plan: a pure function of (settings, what the store holds for the
//! integration, what the collector read) → what to write.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::dn::Dn;
use crate::email::EmailAddress;
use crate::guid::ObjectGuid;
use crate::object::{ContentHash, DirectoryObject, ObjectKind, ObjectRecord, ShortHash};
use crate::returning::{Adoption, Aliases, Returning};
use crate::settings::IntegrationSettings;

/// What the store holds for one object of the integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentObject {
    pub anchor: ObjectGuid,
    pub kind: ObjectKind,
    /// The stored record's content hash, its first 128 bits.
    pub content_hash: ShortHash,
    pub managed: bool,
    /// The digest of the entry the stored record was derived from (see
    /// [`crate::digest`]); `None` when not known, or when the entry had
    /// notes (which each run reports again).
    pub entry_digest: Option<ShortHash>,
}

/// What the store holds for the integration: a resync keeps this in
/// memory, so it is kept small.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Current {
    pub objects: Vec<CurrentObject>,
    /// The stored member anchors of groups, sorted; read only when the
    /// source cannot read memberships (see [`Source`]).
    pub members: HashMap<ObjectGuid, Vec<ObjectGuid>>,
    /// The context the integration's last applied run planned under (see
    /// [`Planner::end_index`]).
    pub entry_context: Option<ShortHash>,
}

/// How complete the collection was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    Incomplete(Vec<String>),
}

/// What the collection says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub completeness: Completeness,
    /// Set when group memberships could not be read (Global Catalog ports):
    /// the stored member edges are kept as they are.
    pub memberships_unavailable: Option<String>,
}

impl Source {
    pub fn complete() -> Self {
        Self {
            completeness: Completeness::Complete,
            memberships_unavailable: None,
        }
    }

    pub fn incomplete(reasons: Vec<String>) -> Self {
        Self {
            completeness: Completeness::Incomplete(reasons),
            memberships_unavailable: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalAction {
    /// The object is deleted from the store.
    Delete,
    /// The account stops being directory-managed and is kept, its addresses
    /// marked "created by message in transit".
    Demote,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub anchor: ObjectGuid,
    pub kind: ObjectKind,
    pub action: RemovalAction,
    /// Why the object leaves directory management, in words.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    pub record: ObjectRecord,
    /// The record's JSON, as the store keeps it: what `content_hash` is
    /// the hash of, serialized once, by the planner.
    pub json: String,
    pub content_hash: ContentHash,
    /// The digest of the entry the record was derived from; `None` when
    /// the entry had notes.
    pub entry_digest: Option<ShortHash>,
}

impl Upsert {
    pub fn new(record: ObjectRecord, entry_digest: Option<ShortHash>) -> Self {
        let (json, content_hash) = record.json_and_hash();
        Self {
            record,
            json,
            content_hash,
            entry_digest,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub adds: Vec<Upsert>,
    pub updates: Vec<Upsert>,
    /// Removals the run applies.
    pub removals: Vec<Removal>,
    /// Removals the run does not apply, and why (see [`hold_removals`]).
    pub held: Vec<Removal>,
    pub hold: Option<Hold>,
    pub unchanged: u64,
    /// Of the unchanged, those recognised by their entry digests and left
    /// out of the second pass.
    pub recognised: u64,
    /// Objects read but not synced, with the reason (DN, reason).
    pub skipped: Vec<(String, String)>,
    pub warnings: Vec<String>,
    /// Unchanged records whose entry digest is brought up to date: the
    /// entry changed in what the record does not depend on, or its digest
    /// was not stored yet.
    pub entry_digests: Vec<(ObjectGuid, Option<ShortHash>)>,
    /// The context this plan was made under, stored with the integration
    /// once applied; `None` when entries cannot be recognised by their
    /// digests (memberships not read).
    pub entry_context: Option<ShortHash>,
}

/// The rank of an object's claim on an address, for the one rule that
/// decides who owns an address several objects carry (two integrations of
/// an account, or two objects of one directory). The lowest rank wins:
///
/// 1. a directory-managed object over one kept unmanaged;
/// 2. a primary address over an alias;
/// 3. an enabled account over a disabled one;
/// 4. the integration created first (then the lower integration id).
///
/// The owner depends only on the claims, never on the order of runs, so two
/// integrations cannot take an address back and forth.
pub fn claim_rank(
    is_primary: bool,
    disabled: bool,
    integration_created_at: i64,
    integration_id: &str,
) -> String {
    format!(
        "0{}{}{:020}/{integration_id}",
        u8::from(!is_primary),
        u8::from(disabled),
        integration_created_at.max(0)
    )
}

/// The rank of a claim once its object is kept unmanaged: after every
/// managed claim, in the same order among themselves.
pub fn unmanaged_rank(rank: &str) -> String {
    format!("1{}", rank.get(1..).unwrap_or_default())
}

/// Why a run's removals are not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// More accounts would leave directory management than the integration
    /// allows: the run ends `blocked`, the removals wait for an admin's
    /// approval.
    Guard { limit: u64, accounts: u64 },
    /// Another integration of the account is failing or blocked: no
    /// destructive change is applied for the account until it recovers.
    /// The removals come back on a later run.
    Paused { by: Vec<String> },
}

impl Hold {
    pub fn describe(&self) -> String {
        match self {
            Self::Guard { limit, accounts } => format!(
                "{accounts} accounts would leave directory management, more than the maximum sync deletions ({limit}); adds and updates were applied, the removals wait for approval"
            ),
            Self::Paused { by } => format!(
                "destructive changes are paused for the account while these integrations are failing or blocked: {}",
                by.join(", ")
            ),
        }
    }
}

/// Removals counted by the deletion guard: accounts (users and contacts)
/// leaving directory management. Groups are held along with them.
pub fn guarded_accounts(removals: &[Removal]) -> u64 {
    removals
        .iter()
        .filter(|r| r.kind != ObjectKind::Group)
        .count() as u64
}

/// The deletion guard and the account-wide pause: moves the plan's removals
/// to `held` when they must not be applied. `paused_by` names the account's
/// other integrations that are failing or blocked.
///
/// `earlier`: accounts that delta runs removed since the integration's last
/// full sync. They count against the limit with this run's, so a burst of
/// small deltas cannot remove more than one full sync could.
pub fn hold_removals(
    plan: &mut Plan,
    settings: &IntegrationSettings,
    paused_by: &[String],
    earlier: u64,
) {
    if plan.removals.is_empty() {
        return;
    }
    let accounts = guarded_accounts(&plan.removals) + earlier;
    let hold = if accounts > settings.maximum_sync_deletions {
        Hold::Guard {
            limit: settings.maximum_sync_deletions,
            accounts,
        }
    } else if !paused_by.is_empty() {
        Hold::Paused {
            by: paused_by.to_vec(),
        }
    } else {
        return;
    };
    plan.warnings.push(hold.describe());
    plan.held = std::mem::take(&mut plan.removals);
    plan.hold = Some(hold);
}

/// Computes what a run writes. Pure: no I/O, no clock. The same as
/// [`Planner`] over a list held in memory.
pub fn plan(
    settings: &IntegrationSettings,
    source: &Source,
    current: &Current,
    collected: Vec<DirectoryObject>,
) -> Plan {
    plan_entries(
        settings,
        source,
        current,
        collected.into_iter().map(|o| (o, None)).collect(),
    )
}

/// [`plan`] over objects collected with their entry digests.
pub fn plan_entries(
    settings: &IntegrationSettings,
    source: &Source,
    current: &Current,
    collected: Vec<(DirectoryObject, Option<ShortHash>)>,
) -> Plan {
    let mut planner = Planner::new(
        Arc::new(settings.clone()),
        source.memberships_unavailable.clone(),
        Arc::new(current.clone()),
    );
    let same: Vec<bool> = collected
        .iter()
        .map(|(obj, digest)| planner.index(obj, *digest))
        .collect();
    let skip = planner.end_index();
    if matches!(source.completeness, Completeness::Incomplete(_)) {
        planner.collection_incomplete();
    }
    for ((obj, digest), same) in collected.into_iter().zip(same) {
        if !(skip && same) {
            planner.add(obj, digest);
        }
    }
    planner.finish(&source.completeness)
}

/// Plans a run in two passes over the collected objects, in the same order
/// each time, so that the collection need not be held in memory: the first
/// ([`Planner::index`]) learns which objects are in scope and their DNs,
/// the second ([`Planner::add`]) turns each object into a record, links its
/// members and manager, and keeps it only when it differs from the store.
/// How complete the read was is known at the end ([`Planner::finish`]).
///
/// Between the passes ([`Planner::end_index`]) it tells whether the entries
/// the first pass found byte for byte as stored may be left out of the
/// second: a resync of an unchanged directory then decodes each entry once,
/// and only in part.
///
/// What it holds between the passes is sized for a million objects: per
/// anchor a 4-byte table slot and a byte of state (and, for anchors the
/// store does not hold, the anchor), per DN in scope a 128-bit hash and
/// an id.
pub struct Planner {
    settings: Arc<IntegrationSettings>,
    /// Set when group memberships could not be read (see [`Source`]).
    memberships_unavailable: Option<String>,
    current: Arc<Current>,
    /// Every anchor met, the store's and the collection's.
    anchors: Anchors,
    /// Distinct anchors read in the first pass.
    indexed: usize,
    /// Objects in scope by DN (first pass).
    by_dn: DnIndex,
    out_of_scope_reason: HashMap<ObjectGuid, String>,
    out: Plan,
    /// See [`Planner::pending_rows`].
    pending_rows: usize,
    /// The sum of a 128-bit digest of each (DN key, anchor) in scope: what
    /// member and manager DNs resolve to, in a plan's context.
    dn_sum: u128,
    /// Set by [`Planner::end_index`]: whether the second pass may leave
    /// out the entries the first found unchanged.
    skip: Option<bool>,
    /// Set by [`Planner::collection_incomplete`].
    incomplete: bool,
    /// Stored objects kept as stored because they link to what the run
    /// may not have read.
    kept_for_links: usize,
    /// What the directory's objectGUIDs of adopted accounts stand for.
    aliases: Arc<Aliases>,
    /// The store's unmanaged users by primary address, which a new user
    /// may adopt (see [`crate::returning`]).
    returning: Arc<Returning>,
    /// New users in scope whose primary address is one of `returning`'s.
    fresh_returning: Vec<(ObjectGuid, EmailAddress)>,
}

/// The anchors a plan meets, each known by a 32-bit id: an index in
/// [`Current::objects`], or, with [`Anchors::FRESH`] set, an index in the
/// anchors the store does not hold. A hash table of ids (the anchors
/// themselves stay where they are) and a byte of state per id.
struct Anchors {
    hasher: std::hash::RandomState,
    table: hashbrown::HashTable<u32>,
    fresh: Vec<ObjectGuid>,
    stored_state: Vec<u8>,
    fresh_state: Vec<u8>,
}

impl Anchors {
    const FRESH: u32 = 1 << 31;
    /// Read in the first pass (only the first entry of an anchor counts).
    const INDEXED: u8 = 1;
    /// Planned in the second pass.
    const ADDED: u8 = 2;
    /// Found by the first pass byte for byte as stored.
    const SAME: u8 = 4;

    fn new(stored: &[CurrentObject]) -> Self {
        let mut anchors = Self {
            hasher: std::hash::RandomState::new(),
            table: hashbrown::HashTable::with_capacity(stored.len()),
            fresh: Vec::new(),
            stored_state: vec![0; stored.len()],
            fresh_state: Vec::new(),
        };
        for (i, c) in stored.iter().enumerate() {
            let hash = anchors.hash(&c.anchor);
            if anchors.find(stored, hash, &c.anchor).is_none() {
                anchors.insert(stored, hash, Self::id(i));
            }
        }
        anchors
    }

    fn id(index: usize) -> u32 {
        u32::try_from(index)
            .ok()
            .filter(|&i| i < Self::FRESH)
            .expect("a plan holds fewer than 2^31 objects")
    }

    fn hash(&self, anchor: &ObjectGuid) -> u64 {
        self.hasher.hash_one(anchor)
    }

    fn anchor<'s>(stored: &'s [CurrentObject], fresh: &'s [ObjectGuid], id: u32) -> &'s ObjectGuid {
        if id & Self::FRESH == 0 {
            &stored[id as usize].anchor
        } else {
            &fresh[(id & !Self::FRESH) as usize]
        }
    }

    fn reserve(&mut self, stored: &[CurrentObject], fresh: usize) {
        let (hasher, anchors) = (&self.hasher, &self.fresh);
        self.table.reserve(fresh, |&id| {
            hasher.hash_one(Self::anchor(stored, anchors, id))
        });
        self.fresh.reserve(fresh);
        self.fresh_state.reserve(fresh);
    }

    /// The id of `anchor`, added when it is new.
    fn id_of(&mut self, stored: &[CurrentObject], anchor: &ObjectGuid) -> u32 {
        let hash = self.hash(anchor);
        if let Some(id) = self.find(stored, hash, anchor) {
            return id;
        }
        let id = Self::id(self.fresh.len()) | Self::FRESH;
        self.fresh.push(*anchor);
        self.fresh_state.push(0);
        self.insert(stored, hash, id);
        id
    }

    fn find(&self, stored: &[CurrentObject], hash: u64, anchor: &ObjectGuid) -> Option<u32> {
        self.table
            .find(hash, |&id| Self::anchor(stored, &self.fresh, id) == anchor)
            .copied()
    }

    /// Adds `id`, whose anchor is not in the table yet.
    fn insert(&mut self, stored: &[CurrentObject], hash: u64, id: u32) {
        let (hasher, fresh) = (&self.hasher, &self.fresh);
        self.table.insert_unique(hash, id, |&other| {
            hasher.hash_one(Self::anchor(stored, fresh, other))
        });
    }

    fn state(&mut self, id: u32) -> &mut u8 {
        if id & Self::FRESH == 0 {
            &mut self.stored_state[id as usize]
        } else {
            &mut self.fresh_state[(id & !Self::FRESH) as usize]
        }
    }
}

impl Planner {
    pub fn new(
        settings: Arc<IntegrationSettings>,
        memberships_unavailable: Option<String>,
        current: Arc<Current>,
    ) -> Self {
        Self {
            anchors: Anchors::new(&current.objects),
            settings,
            memberships_unavailable,
            current,
            indexed: 0,
            by_dn: DnIndex::new(),
            out_of_scope_reason: HashMap::new(),
            out: Plan::default(),
            pending_rows: 0,
            dn_sum: 0,
            skip: None,
            incomplete: false,
            kept_for_links: 0,
            aliases: Arc::default(),
            returning: Arc::default(),
            fresh_returning: Vec::new(),
        }
    }

    /// Reads the directory's objectGUIDs through `aliases`: an adopted
    /// account's new objectGUID is planned as the account's anchor.
    pub fn with_aliases(mut self, aliases: Arc<Aliases>) -> Self {
        self.aliases = aliases;
        self
    }

    /// Notes, in the first pass, the new users whose primary address one
    /// of these unmanaged users holds: see [`Planner::returning_users`].
    pub fn watch_returning(mut self, returning: Arc<Returning>) -> Self {
        self.returning = returning;
        self
    }

    /// After the first pass: the new users that adopt a kept account, and
    /// what to say of those that cannot (see [`crate::returning`]).
    pub fn returning_users(&self) -> (Vec<Adoption>, Vec<String>) {
        crate::returning::adoptions(&self.fresh_returning, &self.returning)
    }

    fn anchor_of(&self, directory_anchor: ObjectGuid) -> ObjectGuid {
        if self.aliases.is_empty() {
            return directory_anchor;
        }
        self.aliases
            .get(&directory_anchor)
            .copied()
            .unwrap_or(directory_anchor)
    }

    /// Says, before the second pass, that the collection is incomplete (an
    /// entry could not be read, a page is missing): a stored object whose
    /// members or manager name a DN the run did not read then keeps its
    /// stored record, rather than losing a link to an object that may
    /// only have been skipped.
    pub fn collection_incomplete(&mut self) {
        self.incomplete = true;
    }

    /// The settings it plans with.
    pub fn settings(&self) -> &IntegrationSettings {
        &self.settings
    }

    /// Makes room for `objects` collected objects up front (the count the
    /// collection reported), instead of growing as they come.
    pub fn reserve(&mut self, objects: usize) {
        self.anchors.reserve(
            &self.current.objects,
            objects.saturating_sub(self.current.objects.len()),
        );
        self.by_dn.entries.reserve(objects);
    }

    /// First pass: scope and DN of each collected object. Reads its
    /// anchor, DN, kind and addresses only: members and notes may be left
    /// out. `digest`: its entry's (see [`crate::digest`]).
    ///
    /// True when the entry is the one the stored record was derived from:
    /// if [`Planner::end_index`] then allows it, the second pass may leave
    /// it out.
    pub fn index(&mut self, obj: &DirectoryObject, digest: Option<ShortHash>) -> bool {
        let anchor = self.anchor_of(obj.anchor);
        let id = self.anchors.id_of(&self.current.objects, &anchor);
        let state = self.anchors.state(id);
        if *state & Anchors::INDEXED != 0 {
            self.out.warnings.push(format!(
                "{}: objectGUID {} was read twice; the first entry was kept",
                obj.dn, obj.anchor
            ));
            return false;
        }
        *state |= Anchors::INDEXED;
        self.indexed += 1;
        if let Some(reason) = out_of_scope(&self.settings, obj) {
            self.out_of_scope_reason.insert(anchor, reason.clone());
            self.out.skipped.push((obj.dn.to_string(), reason));
            return false;
        }
        if self.skip.is_some() {
            return false; // after the first pass
        }
        if id & Anchors::FRESH != 0
            && !self.returning.is_empty()
            && obj.kind == ObjectKind::User
            && let Some(primary) = &obj.primary_address
            && self.returning.contains_key(primary)
        {
            self.fresh_returning.push((anchor, primary.clone()));
        }
        self.by_dn.push(obj.dn.key(), id);
        self.dn_sum = self.dn_sum.wrapping_add(dn_digest(obj.dn.key(), &anchor));
        let same = digest.is_some()
            && id & Anchors::FRESH == 0
            && self
                .current
                .objects
                .get(id as usize)
                .is_some_and(|c| c.managed && c.kind == obj.kind && c.entry_digest == digest);
        if same {
            *self.anchors.state(id) |= Anchors::SAME;
        }
        same
    }

    /// Ends the first pass. True when the entries [`Planner::index`] found
    /// unchanged may be left out of the second pass: the plan's context
    /// (the settings, the objects in scope by DN, this release) is the one
    /// the integration's last applied run planned under, so their records
    /// are the stored ones. They count as unchanged then, and an entry of
    /// theirs that the second pass still gives is ignored, as a second
    /// entry of an anchor is.
    pub fn end_index(&mut self) -> bool {
        if let Some(skip) = self.skip {
            return skip;
        }
        self.by_dn.freeze();
        self.out.entry_context = self.entry_context();
        let skip = self.out.entry_context.is_some()
            && self.out.entry_context == self.current.entry_context;
        for state in &mut self.anchors.stored_state {
            if *state & Anchors::SAME != 0 {
                *state &= !Anchors::SAME;
                if skip {
                    *state |= Anchors::ADDED;
                    self.out.unchanged += 1;
                    self.out.recognised += 1;
                }
            }
        }
        self.skip = Some(skip);
        skip
    }

    /// What a record depends on besides its entry: the settings, what DNs
    /// resolve to, and the release that derives it. `None` when stored
    /// member edges stand in for the entries' (memberships not read).
    fn entry_context(&self) -> Option<ShortHash> {
        use sha2::{Digest, Sha256};
        /// Bumped when the way a record is derived from its entry changes.
        const RECORD_FORMAT: &[u8] = b"1";
        if self.memberships_unavailable.is_some() {
            return None;
        }
        let mut h = Sha256::new();
        h.update(b"dirsync entry context\0");
        h.update(RECORD_FORMAT);
        h.update(b"\0");
        h.update(env!("CARGO_PKG_VERSION"));
        h.update(b"\0");
        // Serialising settings (strings, numbers, lists) cannot fail. How
        // often deltas run, and how they read, does not change a record.
        let mut settings = (*self.settings).clone();
        settings.delta_interval_minutes = crate::settings::DEFAULT_DELTA_INTERVAL_MINUTES;
        settings.delta_method = crate::settings::DeltaMethod::default();
        let _ = serde_json::to_writer(&mut h, &settings);
        h.update(self.dn_sum.to_le_bytes());
        Some(crate::digest::short(h))
    }

    /// Second pass: the same objects in the same order, less those the
    /// first found unchanged if [`Planner::end_index`] allowed it.
    pub fn add(&mut self, mut obj: DirectoryObject, digest: Option<ShortHash>) {
        self.end_index();
        obj.anchor = self.anchor_of(obj.anchor);
        let entry_digest = digest.filter(|_| obj.notes.is_empty());
        for note in &obj.notes {
            self.out.warnings.push(format!("{}: {note}", obj.dn));
        }
        let id = self.anchors.id_of(&self.current.objects, &obj.anchor);
        let state = self.anchors.state(id);
        if *state & Anchors::ADDED != 0 || self.out_of_scope_reason.contains_key(&obj.anchor) {
            return;
        }
        *state |= Anchors::ADDED;
        let stored = (id & Anchors::FRESH == 0).then(|| &self.current.objects[id as usize]);
        // Member DNs → anchors, among the objects in scope; or, when the
        // source cannot read memberships, the stored edges unchanged.
        let members = match (&self.memberships_unavailable, stored) {
            (Some(_), Some(c)) => self
                .current
                .members
                .get(&c.anchor)
                .cloned()
                .unwrap_or_default(),
            (Some(_), None) => Vec::new(),
            (None, _) => {
                let mut m: Vec<ObjectGuid> = obj
                    .member_dns
                    .iter()
                    .filter_map(|m| self.by_dn.get(m.key()))
                    .map(|id| *Anchors::anchor(&self.current.objects, &self.anchors.fresh, id))
                    .collect();
                m.sort();
                m.dedup();
                m
            }
        };
        let manager = Dn::parse(&obj.attributes.manager_dn)
            .ok()
            .and_then(|m| self.by_dn.get(m.key()))
            .map(|id| *Anchors::anchor(&self.current.objects, &self.anchors.fresh, id));
        if self.incomplete && stored.is_some() {
            let unread = |dn: &Dn| self.by_dn.get(dn.key()).is_none();
            let links_unread = (self.memberships_unavailable.is_none()
                && obj.member_dns.iter().any(unread))
                || Dn::parse(&obj.attributes.manager_dn)
                    .ok()
                    .is_some_and(|m| unread(&m));
            if links_unread {
                self.kept_for_links += 1;
                self.out.unchanged += 1;
                return;
            }
        }
        let record = record_of(&self.settings, obj, members, manager);
        // Diff against the store.
        let (json, hash) = record.json_and_hash();
        let rows = 1
            + record.aliases.len()
            + usize::from(record.primary_address.is_some())
            + record.members.len();
        match stored {
            None => {
                self.pending_rows += rows;
                self.out.adds.push(Upsert {
                    record,
                    json,
                    content_hash: hash,
                    entry_digest,
                });
            }
            Some(c)
                if c.content_hash == ShortHash::from(hash)
                    && c.managed
                    && c.kind == record.kind =>
            {
                self.out.unchanged += 1;
                if c.entry_digest != entry_digest {
                    self.pending_rows += 1;
                    self.out.entry_digests.push((record.anchor, entry_digest));
                }
            }
            Some(_) => {
                self.pending_rows += rows;
                self.out.updates.push(Upsert {
                    record,
                    json,
                    content_hash: hash,
                    entry_digest,
                });
            }
        }
    }

    /// The rows the adds, updates and entry digests kept so far write (an
    /// object, its addresses and its member edges each), a measure of their
    /// size.
    pub fn pending_rows(&self) -> usize {
        self.pending_rows
    }

    /// Takes the adds, updates and entry digests kept so far, to be
    /// written while the second pass goes on; the plan then holds only what
    /// comes after.
    pub fn take_writes(&mut self) -> Writes {
        self.pending_rows = 0;
        Writes {
            adds: std::mem::take(&mut self.out.adds),
            updates: std::mem::take(&mut self.out.updates),
            entry_digests: std::mem::take(&mut self.out.entry_digests),
        }
    }

    /// The plan: what the second pass kept, and the removals a complete
    /// read allows.
    pub fn finish(mut self, completeness: &Completeness) -> Plan {
        self.end_index();
        let Self {
            settings,
            memberships_unavailable,
            current,
            anchors,
            indexed,
            out_of_scope_reason,
            mut out,
            kept_for_links,
            ..
        } = self;
        summarize_skipped(&out.skipped, &mut out.warnings);
        if kept_for_links > 0 {
            out.warnings.push(format!(
                "{kept_for_links} objects link (members, manager) to entries this incomplete run may not have read: they keep their stored records until a complete run"
            ));
        }
        if let Some(reason) = &memberships_unavailable {
            out.warnings.push(format!(
                "group memberships were not read ({reason}); stored members are kept as they are"
            ));
        }
        let none_present = indexed == out_of_scope_reason.len();

        // Removals, only on a complete read: stored objects not present
        // (read and in scope).
        let gone: Vec<&CurrentObject> = current
            .objects
            .iter()
            .zip(&anchors.stored_state)
            .filter(|&(c, &state)| {
                c.managed
                    && (state & Anchors::INDEXED == 0
                        || out_of_scope_reason.contains_key(&c.anchor))
            })
            .map(|(c, _)| c)
            .collect();
        let completeness = match completeness {
            Completeness::Complete if none_present && !gone.is_empty() => {
                Completeness::Incomplete(vec![
                    "the Root DN returned no objects in scope although the store holds some; nothing is removed on an empty read".to_owned(),
                ])
            }
            other => other.clone(),
        };
        match completeness {
            Completeness::Complete => {
                out.removals = gone
                    .into_iter()
                    .map(|c| {
                        let why = match out_of_scope_reason.get(&c.anchor) {
                            Some(r) => format!("out of scope: {r}"),
                            None => "no longer in the directory result (deleted in AD, moved out of the Root DN, or not readable by the bind account)".to_owned(),
                        };
                        removal_of(&settings, c.anchor, c.kind, &why)
                    })
                    .collect();
            }
            Completeness::Incomplete(reasons) => {
                if !gone.is_empty() {
                    out.warnings.push(format!(
                        "{} objects are no longer in the result but nothing was removed because the collection is incomplete: {}",
                        gone.len(),
                        reasons.join("; ")
                    ));
                }
            }
        }
        out
    }
}

/// The record of an object in scope, its members and manager resolved.
pub(crate) fn record_of(
    settings: &IntegrationSettings,
    obj: DirectoryObject,
    members: Vec<ObjectGuid>,
    manager: Option<ObjectGuid>,
) -> ObjectRecord {
    let mut aliases = obj.aliases;
    aliases.retain(|a| settings.domain_in_scope(a.domain()));
    ObjectRecord {
        anchor: obj.anchor,
        kind: obj.kind,
        dn: obj.dn.to_string(),
        disabled: obj.kind == ObjectKind::User
            && settings.acknowledge_disabled_accounts
            && obj.ad_disabled,
        attributes: obj.attributes,
        primary_address: obj.primary_address,
        aliases,
        members,
        group_type: obj.group_type,
        manager,
    }
}

/// A stored object leaving directory management, `why` in words: deleted,
/// or demoted to unmanaged as "delete users" says.
pub(crate) fn removal_of(
    settings: &IntegrationSettings,
    anchor: ObjectGuid,
    kind: ObjectKind,
    why: &str,
) -> Removal {
    let action = if kind == ObjectKind::User && !settings.delete_users {
        RemovalAction::Demote
    } else {
        RemovalAction::Delete
    };
    let policy = match (action, kind) {
        (RemovalAction::Demote, _) => "; delete users is off, so the account is kept unmanaged",
        (RemovalAction::Delete, ObjectKind::User) => "; delete users is on",
        (RemovalAction::Delete, _) => "",
    };
    Removal {
        anchor,
        kind,
        action,
        reason: format!("{why}{policy}"),
    }
}

/// What [`Planner::take_writes`] takes.
#[derive(Debug, Default)]
pub struct Writes {
    pub adds: Vec<Upsert>,
    pub updates: Vec<Upsert>,
    pub entry_digests: Vec<(ObjectGuid, Option<ShortHash>)>,
}

/// A digest of an object in scope's DN key and anchor, for a plan's
/// context: stable across runs and releases.
fn dn_digest(dn_key: &str, anchor: &ObjectGuid) -> u128 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(anchor.as_bytes());
    h.update(dn_key);
    u128::from_le_bytes(crate::digest::short(h).0)
}

/// Ids of objects by DN key, for linking members and managers: a 128-bit
/// hash of each key (SipHash-1-3 under a key drawn per index, so no
/// directory content can be made to collide) and a 32-bit id, sorted once
/// the first pass is done, and a table of where each leading-bits bucket
/// starts, so that a look-up reads a few neighbouring entries. 24 bytes per
/// DN instead of the DN itself.
pub struct DnIndex {
    key: [u8; 16],
    /// (hash's high half, low half, id).
    entries: Vec<(u64, u64, u32)>,
    /// Bucket `b` (the hash's top `bits` bits) is `entries[starts[b]..starts[b + 1]]`.
    starts: Vec<u32>,
    bits: u32,
    frozen: bool,
}

impl Default for DnIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl DnIndex {
    pub fn new() -> Self {
        Self {
            key: rand::random(),
            entries: Vec::new(),
            starts: Vec::new(),
            bits: 0,
            frozen: false,
        }
    }

    fn hash(&self, dn_key: &str) -> (u64, u64) {
        use siphasher::sip128::{Hasher128, SipHasher13};
        use std::hash::Hasher;
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write(dn_key.as_bytes());
        let h = h.finish128();
        (h.h1, h.h2)
    }

    /// Adds a DN key (before [`DnIndex::freeze`]; ignored after).
    pub fn push(&mut self, dn_key: &str, id: u32) {
        if !self.frozen {
            let (high, low) = self.hash(dn_key);
            self.entries.push((high, low, id));
        }
    }

    /// Sorts the entries for look-ups; later pushes are ignored.
    pub fn freeze(&mut self) {
        if self.frozen {
            return;
        }
        self.frozen = true;
        self.entries.sort_unstable_by_key(|e| (e.0, e.1));
        // About four entries per bucket.
        self.bits = (self.entries.len() / 4).max(1).ilog2();
        let buckets = 1usize << self.bits;
        self.starts = Vec::with_capacity(buckets + 1);
        let mut i = 0;
        for b in 0..buckets {
            while i < self.entries.len() && self.bucket(self.entries[i].0) < b {
                i += 1;
            }
            self.starts.push(i as u32);
        }
        self.starts.push(self.entries.len() as u32);
    }

    fn bucket(&self, high: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (high >> (64 - self.bits)) as usize
        }
    }

    /// The id pushed with this DN key (after [`DnIndex::freeze`]).
    pub fn get(&self, dn_key: &str) -> Option<u32> {
        if !self.frozen {
            return None;
        }
        let (high, low) = self.hash(dn_key);
        let b = self.bucket(high);
        let (from, to) = (self.starts[b] as usize, self.starts[b + 1] as usize);
        self.entries[from..to]
            .iter()
            .find(|e| e.0 == high && e.1 == low)
            .map(|e| e.2)
    }
}

/// How many skipped DNs a run's warnings name per reason.
const SKIPPED_EXAMPLES: usize = 5;

/// One warning per skip reason: the count and a few DNs.
pub(crate) fn summarize_skipped(skipped: &[(String, String)], warnings: &mut Vec<String>) {
    let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (dn, reason) in skipped {
        by_reason.entry(reason).or_default().push(dn);
    }
    for (reason, dns) in by_reason {
        let shown: Vec<&str> = dns.iter().take(SKIPPED_EXAMPLES).copied().collect();
        let more = dns.len().saturating_sub(SKIPPED_EXAMPLES);
        warnings.push(format!(
            "{} not synced ({reason}): {}{}",
            match dns.len() {
                1 => "1 object".to_owned(),
                n => format!("{n} objects"),
            },
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ));
    }
}

pub(crate) fn out_of_scope(
    settings: &IntegrationSettings,
    obj: &DirectoryObject,
) -> Option<String> {
    if obj.kind == ObjectKind::Contact && !settings.include_contacts {
        return Some("contacts are not included".to_owned());
    }
    match (&obj.primary_address, obj.kind) {
        (None, ObjectKind::User | ObjectKind::Contact) => {
            Some("no email address (mail or SMTP proxyAddresses)".to_owned())
        }
        (Some(primary), _) if !settings.domain_in_scope(primary.domain()) => Some(format!(
            "primary address domain {} is not in the email domain filter",
            primary.domain()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Entry;
    use crate::settings::SettingsInput;

    fn settings(f: impl FnOnce(&mut SettingsInput)) -> IntegrationSettings {
        let mut s = SettingsInput {
            name: "t".into(),
            host: "dc".into(),
            user_dn: "CN=u,DC=x".into(),
            root_dn: "DC=x".into(),
            acknowledge_disabled_accounts: true,
            ..Default::default()
        };
        f(&mut s);
        IntegrationSettings::validate(&s).expect("valid")
    }

    fn guid(n: u8) -> String {
        format!("00000000-0000-0000-0000-0000000000{n:02x}")
    }

    fn user(n: u8, mail: &str, uac: i64) -> DirectoryObject {
        DirectoryObject::try_from(Entry {
            mail: mail.into(),
            user_account_control: Some(uac),
            display_name: format!("User {n}"),
            ..Entry::new(ObjectKind::User, guid(n), format!("CN=u{n},DC=x"))
        })
        .expect("valid")
    }

    fn group(n: u8, members: &[u8]) -> DirectoryObject {
        DirectoryObject::try_from(Entry {
            member_dns: members
                .iter()
                .map(|m| format!("cn=U{m}, dc=X"))
                .chain(members.iter().map(|m| format!("CN=g{m},DC=x")))
                .collect(),
            ..Entry::new(ObjectKind::Group, guid(n), format!("CN=g{n},DC=x"))
        })
        .expect("valid")
    }

    fn current_of(p: &Plan) -> Current {
        let upserts = || p.adds.iter().chain(&p.updates);
        Current {
            objects: upserts()
                .map(|u| CurrentObject {
                    anchor: u.record.anchor,
                    kind: u.record.kind,
                    content_hash: u.content_hash.into(),
                    managed: true,
                    entry_digest: u.entry_digest,
                })
                .collect(),
            members: upserts()
                .filter(|u| !u.record.members.is_empty())
                .map(|u| (u.record.anchor, u.record.members.clone()))
                .collect(),
            entry_context: p.entry_context,
        }
    }

    #[test]
    fn the_dn_index_finds_every_key_and_nothing_else() {
        let empty = {
            let mut i = DnIndex::new();
            i.freeze();
            i
        };
        assert_eq!(empty.get("cn=a"), None);
        for n in [1usize, 3, 4, 5, 100, 5000] {
            let mut i = DnIndex::new();
            let anchor = |k: usize| u32::try_from(k).expect("a small test");
            for k in 0..n {
                i.push(&format!("cn=u{k},dc=x"), anchor(k));
            }
            assert_eq!(i.get("cn=u0,dc=x"), None, "not before the first pass ends");
            i.freeze();
            i.push("cn=late,dc=x", anchor(n));
            for k in 0..n {
                assert_eq!(
                    i.get(&format!("cn=u{k},dc=x")),
                    Some(anchor(k)),
                    "{k} of {n}"
                );
            }
            assert_eq!(i.get(&format!("cn=u{n},dc=x")), None);
            assert_eq!(i.get("cn=late,dc=x"), None);
        }
    }

    #[test]
    fn first_run_adds_and_second_is_unchanged() {
        let s = settings(|_| {});
        let objs = vec![
            user(1, "a@example.com", 512),
            user(2, "b@example.com", 514),
            group(3, &[1, 2, 9]),
        ];
        let p = plan(&s, &Source::complete(), &Current::default(), objs.clone());
        assert_eq!(p.adds.len(), 3);
        let g = &p.adds[2].record;
        assert_eq!(
            g.members.len(),
            2,
            "unknown member dropped, DNs matched case-insensitively"
        );
        assert!(p.adds[1].record.disabled);
        let again = plan(&s, &Source::complete(), &current_of(&p), objs);
        assert_eq!((again.adds.len(), again.updates.len()), (0, 0));
        assert_eq!(again.unchanged, 3);
        assert!(again.removals.is_empty());
    }

    #[test]
    fn an_anchor_read_twice_keeps_its_first_entry_stored_or_new() {
        let s = settings(|_| {});
        let stored = plan(
            &s,
            &Source::complete(),
            &Current::default(),
            vec![user(1, "a@example.com", 512), user(2, "b@example.com", 512)],
        );
        let mut second = user(1, "other@example.com", 512);
        second.dn = Dn::parse("CN=copy,DC=x").expect("valid DN");
        let mut new_twice = user(4, "d@example.com", 512);
        new_twice.dn = Dn::parse("CN=copy4,DC=x").expect("valid DN");
        let p = plan(
            &s,
            &Source::complete(),
            &current_of(&stored),
            vec![
                user(1, "a@example.com", 512),
                user(2, "b@example.com", 512),
                user(4, "c@example.com", 512),
                second,
                new_twice,
            ],
        );
        let twice: Vec<&String> = p
            .warnings
            .iter()
            .filter(|w| w.contains("read twice"))
            .collect();
        assert_eq!(twice.len(), 2, "{:?}", p.warnings);
        assert!(twice[0].starts_with("CN=copy,DC=x: "), "{twice:?}");
        assert_eq!(p.unchanged, 2, "the first entries of the stored anchors");
        assert_eq!(p.adds.len(), 1);
        assert_eq!(
            p.adds[0]
                .record
                .primary_address
                .as_ref()
                .map(ToString::to_string),
            Some("c@example.com".to_owned())
        );
        assert!(p.updates.is_empty() && p.removals.is_empty(), "{p:?}");
    }

    #[test]
    fn acknowledge_disabled_off_ignores_the_flag() {
        let s = settings(|s| s.acknowledge_disabled_accounts = false);
        let p = plan(
            &s,
            &Source::complete(),
            &Current::default(),
            vec![user(1, "a@example.com", 514)],
        );
        assert!(!p.adds[0].record.disabled);
    }

    #[test]
    fn scope_rules() {
        let s = settings(|s| s.filter_email_domains = "example.com".into());
        let p = plan(
            &s,
            &Source::complete(),
            &Current::default(),
            vec![
                user(1, "a@example.com", 512),
                user(2, "b@example.org", 512),
                user(3, "", 512),
            ],
        );
        assert_eq!(p.adds.len(), 1);
        assert_eq!(p.skipped.len(), 2);
        assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.starts_with("1 object not synced (no email address"))
        );
    }

    #[test]
    fn removed_users_demoted_by_default_deleted_when_asked() {
        let s = settings(|_| {});
        let first = plan(
            &s,
            &Source::complete(),
            &Current::default(),
            vec![
                user(1, "a@example.com", 512),
                user(2, "b@example.com", 512),
                group(3, &[]),
            ],
        );
        let cur = current_of(&first);
        let p = plan(
            &s,
            &Source::complete(),
            &cur,
            vec![user(1, "a@example.com", 512)],
        );
        let actions: Vec<_> = p.removals.iter().map(|r| (r.kind, r.action)).collect();
        assert_eq!(
            actions,
            [
                (ObjectKind::User, RemovalAction::Demote),
                (ObjectKind::Group, RemovalAction::Delete)
            ]
        );
        let s = settings(|s| s.delete_users = true);
        let p = plan(
            &s,
            &Source::complete(),
            &cur,
            vec![user(1, "a@example.com", 512)],
        );
        assert!(p.removals.iter().all(|r| r.action == RemovalAction::Delete));
    }

    /// Plans `collected` as the reconciler does: the first pass, then,
    /// for a returning user, again with the adoption's alias.
    fn plan_returning(
        s: &IntegrationSettings,
        cur: &Current,
        returning: Returning,
        collected: &[DirectoryObject],
    ) -> (Plan, Vec<Adoption>) {
        let new = |aliases: Aliases| {
            Planner::new(Arc::new(s.clone()), None, Arc::new(cur.clone()))
                .with_aliases(Arc::new(aliases))
                .watch_returning(Arc::new(returning.clone()))
        };
        let mut first = new(Aliases::new());
        for o in collected {
            first.index(o, None);
        }
        let (adopted, _) = first.returning_users();
        let aliases = adopted
            .iter()
            .map(|a| (a.directory_anchor, a.anchor))
            .collect();
        let mut planner = new(aliases);
        for o in collected {
            planner.index(o, None);
        }
        for o in collected {
            planner.add(o.clone(), None);
        }
        (planner.finish(&Completeness::Complete), adopted)
    }

    #[test]
    fn a_returning_user_adopts_the_kept_account_and_its_groups_follow() {
        let s = settings(|_| {});
        let first = plan(
            &s,
            &Source::complete(),
            &Current::default(),
            vec![user(1, "carol@example.org", 512), group(9, &[1])],
        );
        let mut cur = current_of(&first);
        // Carol left the directory: kept unmanaged.
        let carol: ObjectGuid = guid(1).parse().expect("guid");
        cur.objects
            .iter_mut()
            .filter(|o| o.anchor == carol)
            .for_each(|o| o.managed = false);
        let returning: Returning = [(EmailAddress::parse("carol@example.org").expect("a"), carol)]
            .into_iter()
            .collect();
        // She comes back as a new object (objectGUID 2), in her group.
        let mut back = user(2, "Carol@Example.org", 512);
        back.dn = Dn::parse("CN=u1,DC=x").expect("dn");
        let (p, adopted) = plan_returning(&s, &cur, returning, &[back, group(9, &[1])]);
        assert_eq!(adopted.len(), 1);
        assert_eq!(adopted[0].anchor, carol);
        assert!(p.adds.is_empty(), "no second account: {:?}", p.adds);
        assert!(p.updates.iter().any(|u| u.record.anchor == carol));
        assert!(p.removals.is_empty());
        // Her group still lists the kept account, under its id: unchanged.
        assert!(
            !p.updates.iter().any(|u| u.record.kind == ObjectKind::Group),
            "{:?}",
            p.updates
        );
    }

    #[test]
    fn an_incomplete_read_keeps_the_links_to_what_it_did_not_read() {
        let s = settings(|_| {});
        let all = vec![
            user(1, "a@example.com", 512),
            user(2, "b@example.com", 512),
            group(9, &[1, 2]),
        ];
        let first = plan(&s, &Source::complete(), &Current::default(), all);
        assert_eq!(first.adds.len(), 3);
        let cur = current_of(&first);
        // User 2 could not be read: the group keeps both members.
        let incomplete = Source::incomplete(vec!["an entry could not be read".into()]);
        let read = vec![user(1, "a@example.com", 512), group(9, &[1, 2])];
        let p = plan(&s, &incomplete, &cur, read.clone());
        assert!(p.updates.is_empty() && p.removals.is_empty(), "{p:?}");
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("keep their stored records"))
        );
        // A complete read of the same: user 2 is gone, the group changes.
        let p = plan(&s, &Source::complete(), &cur, read);
        assert_eq!(p.updates.len(), 1);
        assert_eq!(p.removals.len(), 1);
    }

    #[test]
    fn incomplete_or_empty_reads_remove_nothing() {
        let s = settings(|_| {});
        let first = plan(
            &s,
            &Source::complete(),
            &Current::default(),
            vec![user(1, "a@example.com", 512)],
        );
        let cur = current_of(&first);
        let p = plan(&s, &Source::complete(), &cur, vec![]);
        assert!(p.removals.is_empty());
        assert!(p.warnings[0].contains("empty read"));
        let p = plan(
            &s,
            &Source::incomplete(vec!["size limit".into()]),
            &cur,
            vec![user(2, "b@example.com", 512)],
        );
        assert!(p.removals.is_empty());
        assert_eq!(p.adds.len(), 1);
    }

    fn removing(n: usize) -> (IntegrationSettings, Plan) {
        let s = settings(|s| s.maximum_sync_deletions = 2);
        let objs: Vec<_> = (1..=n as u8)
            .map(|i| user(i, &format!("u{i}@example.com"), 512))
            .collect();
        let first = plan(&s, &Source::complete(), &Current::default(), objs);
        let p = plan(
            &s,
            &Source::complete(),
            &current_of(&first),
            vec![user(1, "u1@example.com", 512)],
        );
        (s, p)
    }

    #[test]
    fn claim_ranks_order_primary_enabled_older() {
        let primary = claim_rank(true, true, 9, "b");
        let alias = claim_rank(false, false, 1, "a");
        assert!(primary < alias, "a primary address beats an alias");
        let enabled = claim_rank(true, false, 9, "b");
        assert!(enabled < primary, "an enabled account beats a disabled one");
        let older = claim_rank(true, false, 1, "z");
        assert!(older < enabled, "the older integration wins a tie");
        assert!(claim_rank(true, false, 1, "a") < older);
        assert!(older.as_str() < "~", "rows without a rank lose");
        let unmanaged = unmanaged_rank(&older);
        assert!(
            alias < unmanaged,
            "a managed alias beats an unmanaged primary"
        );
        assert!(unmanaged < unmanaged_rank(&alias));
    }

    #[test]
    fn the_guard_holds_removals_over_the_maximum() {
        let (s, mut p) = removing(3); // two removals: at the limit
        hold_removals(&mut p, &s, &[], 0);
        assert_eq!(
            (p.removals.len(), p.held.len(), p.hold.clone()),
            (2, 0, None)
        );

        let (s, mut p) = removing(4); // three removals: over
        hold_removals(&mut p, &s, &[], 0);
        assert_eq!((p.removals.len(), p.held.len()), (0, 3));
        assert_eq!(
            p.hold,
            Some(Hold::Guard {
                limit: 2,
                accounts: 3
            })
        );
        assert!(
            p.warnings
                .last()
                .is_some_and(|w| w.contains("wait for approval"))
        );
    }

    #[test]
    fn another_failing_integration_pauses_removals() {
        let (s, mut p) = removing(2);
        hold_removals(&mut p, &s, &["Resource forest".to_owned()], 0);
        assert!(p.removals.is_empty());
        assert_eq!(p.held.len(), 1);
        assert!(matches!(p.hold, Some(Hold::Paused { .. })));
        // Nothing to remove: nothing held, no warning.
        let mut empty = Plan::default();
        hold_removals(&mut empty, &s, &["x".to_owned()], 0);
        assert!(empty.hold.is_none() && empty.warnings.is_empty());
    }

    #[test]
    fn unavailable_memberships_keep_the_stored_edges() {
        let s = settings(|_| {});
        let objs = vec![
            user(1, "a@example.com", 512),
            user(2, "b@example.com", 512),
            group(3, &[1, 2]),
        ];
        let first = plan(&s, &Source::complete(), &Current::default(), objs);
        let cur = current_of(&first);
        let gc = Source {
            memberships_unavailable: Some("Global Catalog".into()),
            ..Source::complete()
        };
        // The GC shows the group without members: nothing changes.
        let objs = vec![
            user(1, "a@example.com", 512),
            user(2, "b@example.com", 512),
            group(3, &[]),
        ];
        let p = plan(&s, &gc, &cur, objs);
        assert_eq!((p.adds.len(), p.updates.len(), p.unchanged), (0, 0, 3));
        assert!(p.warnings[0].contains("stored members are kept"));
    }

    #[test]
    fn a_changed_object_is_an_update_and_a_demoted_one_comes_back() {
        let s = settings(|_| {});
        let first = plan(
            &s,
            &Source::complete(),
            &Current::default(),
            vec![user(1, "a@example.com", 512)],
        );
        let mut cur = current_of(&first);
        let p = plan(
            &s,
            &Source::complete(),
            &cur,
            vec![user(1, "a2@example.com", 512)],
        );
        assert_eq!(p.updates.len(), 1);
        cur.objects[0].managed = false;
        let p = plan(
            &s,
            &Source::complete(),
            &cur,
            vec![user(1, "a@example.com", 512)],
        );
        assert_eq!(p.updates.len(), 1);
    }
}
