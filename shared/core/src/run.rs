//! The run lifecycle: `queued → collecting → reconciling → succeeded |
//! failed | blocked`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Collecting,
    Reconciling,
    Succeeded,
    Failed,
    /// Adds and updates applied; destructive changes held for approval.
    Blocked,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Collecting => "collecting",
            Self::Reconciling => "reconciling",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "collecting" => Self::Collecting,
            "reconciling" => Self::Reconciling,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "blocked" => Self::Blocked,
            _ => return None,
        })
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Collecting | Self::Reconciling)
    }
}

/// What a run reads: the whole Root DN, or only what changed since the
/// integration's last applied run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    #[default]
    Full,
    Delta,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Delta => "delta",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "full" => Self::Full,
            "delta" => Self::Delta,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    SyncNow,
    SyncAll,
    Schedule,
    /// A dry run: the plan is logged, nothing is applied.
    Preview,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SyncNow => "sync_now",
            Self::SyncAll => "sync_all",
            Self::Schedule => "schedule",
            Self::Preview => "preview",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sync_now" => Self::SyncNow,
            "sync_all" => Self::SyncAll,
            "schedule" => Self::Schedule,
            "preview" => Self::Preview,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    pub collected: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    /// Removals held by the deletion guard, waiting for approval.
    pub pending: u64,
}
