//! Every subject and stream name of dirsync, derived from one prefix so that
//! deployments (and tests) sharing a NATS server stay apart.

/// What a message is about; each topic is a durable work queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Gateway → scheduler: a run to start.
    Requests,
    /// Scheduler → collectors: `SyncJob`s, partitioned by domain label.
    /// Subscribing with `partition: None` takes every partition.
    Jobs { partition: Option<String> },
    /// Collectors → reconciler: `CollectorEvent`s.
    Events,
}

#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// `prefix` is a subject token: letters, digits, '-' and '_'.
    pub fn new(prefix: &str) -> Self {
        let clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self { prefix: clean }
    }

    pub fn stream(&self, topic: &Topic) -> String {
        let suffix = match topic {
            Topic::Requests => "REQUESTS",
            Topic::Jobs { .. } => "JOBS",
            Topic::Events => "EVENTS",
        };
        format!("{}_{suffix}", self.prefix.to_uppercase().replace('-', "_"))
    }

    /// Every subject a topic's stream holds.
    pub fn stream_subjects(&self, topic: &Topic) -> String {
        match topic {
            Topic::Requests => format!("{}.requests", self.prefix),
            Topic::Jobs { .. } => format!("{}.jobs.>", self.prefix),
            Topic::Events => format!("{}.events", self.prefix),
        }
    }

    /// The subject to publish on, or to filter a consumer by.
    pub fn subject(&self, topic: &Topic) -> String {
        match topic {
            Topic::Jobs { partition: Some(p) } => {
                format!("{}.jobs.{}", self.prefix, partition_token(p))
            }
            other => self.stream_subjects(other),
        }
    }

    /// The core NATS subject (in no stream) that announces a run settled:
    /// best effort, to whoever listens at the time.
    pub fn settled(&self) -> String {
        format!("{}.settled", self.prefix)
    }

    /// Durable consumer name of a topic's competing consumers.
    pub fn consumer(&self, topic: &Topic) -> String {
        match topic {
            Topic::Requests => "scheduler".to_owned(),
            Topic::Jobs { partition: None } => "collector-all".to_owned(),
            Topic::Jobs { partition: Some(p) } => format!("collector-{}", partition_token(p)),
            Topic::Events => "reconciler".to_owned(),
        }
    }
}

/// A short name of a topic, for metrics.
pub fn topic_label(topic: &Topic) -> &'static str {
    match topic {
        Topic::Requests => "requests",
        Topic::Jobs { .. } => "jobs",
        Topic::Events => "events",
    }
}

/// A partition label as one subject token.
pub fn partition_token(p: &str) -> String {
    let t: String = p
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "default".to_owned()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derive_from_the_prefix() {
        let n = Names::new("t-1.x");
        assert_eq!(n.stream(&Topic::Events), "T_1_X_EVENTS");
        assert_eq!(
            n.stream_subjects(&Topic::Jobs { partition: None }),
            "t-1_x.jobs.>"
        );
        assert_eq!(
            n.subject(&Topic::Jobs {
                partition: Some("Corp.Example.COM".into())
            }),
            "t-1_x.jobs.corp_example_com"
        );
        assert_eq!(n.subject(&Topic::Requests), "t-1_x.requests");
    }
}
