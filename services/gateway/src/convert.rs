//! Store records → API messages.

use dirsync_core::{GroupScope, ObjectKind, RunKind, RunState, Trigger, UnixMillis};
use dirsync_proto::api;
use dirsync_store::{IntegrationRecord, RunRecord, StoredObject};

pub fn timestamp(ms: UnixMillis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or_default(),
    }
}

pub fn integration(r: &IntegrationRecord) -> api::Integration {
    api::Integration {
        id: r.id.clone(),
        account_id: r.account_id.clone(),
        settings: Some(dirsync_convert::settings_to_api(&r.settings)),
        password_set: r.password.is_some(),
        created_at: Some(timestamp(r.created_at)),
        updated_at: Some(timestamp(r.updated_at)),
        status: None,
        warnings: r.settings.warnings(),
    }
}

pub fn run(r: &RunRecord) -> api::Run {
    api::Run {
        id: r.id.clone(),
        account_id: r.account_id.clone(),
        integration_id: r.integration_id.clone(),
        state: match r.state {
            RunState::Queued => api::RunState::Queued,
            RunState::Collecting => api::RunState::Collecting,
            RunState::Reconciling => api::RunState::Reconciling,
            RunState::Succeeded => api::RunState::Succeeded,
            RunState::Failed => api::RunState::Failed,
            RunState::Blocked => api::RunState::Blocked,
        } as i32,
        trigger: match r.trigger {
            Trigger::SyncNow => api::RunTrigger::SyncNow,
            Trigger::SyncAll => api::RunTrigger::SyncAll,
            Trigger::Schedule => api::RunTrigger::Schedule,
            Trigger::Preview => api::RunTrigger::Preview,
        } as i32,
        attempt: r.attempt,
        counts: Some(api::RunCounts {
            collected: r.counts.collected,
            added: r.counts.added,
            updated: r.counts.updated,
            removed: r.counts.removed,
            unchanged: r.counts.unchanged,
            pending: r.counts.pending,
        }),
        error: r.error.clone(),
        host: r.host.clone(),
        warnings: r.warnings.clone(),
        created_at: Some(timestamp(r.created_at)),
        started_at: r.started_at.map(timestamp),
        finished_at: r.finished_at.map(timestamp),
        hold_reason: r.hold_reason.clone(),
        kind: match r.kind {
            RunKind::Full => api::RunKind::Full,
            RunKind::Delta => api::RunKind::Delta,
        } as i32,
        full_reason: r.full_reason.clone(),
    }
}

pub fn object(o: &StoredObject) -> api::DirectoryObject {
    let r = &o.record;
    let a = &r.attributes;
    api::DirectoryObject {
        id: r.anchor.to_string(),
        kind: kind(r.kind) as i32,
        integration_id: o.integration_id.clone(),
        dn: r.dn.clone(),
        display_name: a.display_name.clone(),
        given_name: a.given_name.clone(),
        surname: a.surname.clone(),
        primary_address: r
            .primary_address
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default(),
        aliases: r.aliases.iter().map(|e| e.to_string()).collect(),
        disabled: r.disabled,
        managed: o.managed,
        member_ids: r.members.iter().map(|m| m.to_string()).collect(),
        department: a.department.clone(),
        title: a.title.clone(),
        telephone_number: a.telephone_number.clone(),
        company: a.company.clone(),
        sam_account_name: a.sam_account_name.clone(),
        user_principal_name: a.user_principal_name.clone(),
        object_sid: a.object_sid.clone(),
        manager_dn: a.manager_dn.clone(),
        manager_id: r.manager.map(|m| m.to_string()).unwrap_or_default(),
        group_scope: match r.group_type.map(|g| g.scope) {
            None => api::GroupScope::Unspecified,
            Some(GroupScope::Global) => api::GroupScope::Global,
            Some(GroupScope::DomainLocal) => api::GroupScope::DomainLocal,
            Some(GroupScope::Universal) => api::GroupScope::Universal,
            Some(GroupScope::Builtin) => api::GroupScope::Builtin,
        } as i32,
        security_group: r.group_type.is_some_and(|g| g.security),
    }
}

pub fn kind(k: ObjectKind) -> api::ObjectKind {
    match k {
        ObjectKind::User => api::ObjectKind::User,
        ObjectKind::Group => api::ObjectKind::Group,
        ObjectKind::Contact => api::ObjectKind::Contact,
    }
}

pub fn change(c: &dirsync_store::ChangeRecord) -> api::Change {
    use dirsync_core::change::Operation;
    api::Change {
        run_id: c.run_id.clone(),
        object_id: c.change.anchor.to_string(),
        kind: kind(c.change.kind) as i32,
        dn: c.change.dn.clone(),
        operation: match c.change.operation {
            Operation::Add => api::ChangeOperation::Add,
            Operation::Update => api::ChangeOperation::Update,
            Operation::Disable => api::ChangeOperation::Disable,
            Operation::Enable => api::ChangeOperation::Enable,
            Operation::Restore => api::ChangeOperation::Restore,
            Operation::Demote => api::ChangeOperation::Demote,
            Operation::Delete => api::ChangeOperation::Delete,
            Operation::Held => api::ChangeOperation::Held,
        } as i32,
        fields: c
            .change
            .fields
            .iter()
            .map(|f| api::FieldChange {
                field: f.field.clone(),
                old: f.old.clone(),
                new: f.new.clone(),
            })
            .collect(),
        reason: c.change.reason.clone(),
        at: Some(timestamp(c.at)),
    }
}
