//! Routing rules and rule actions (spec §2.10) as a shard sees them. Shard 0 is the writer (it
//! logs every change); every shard keeps a parsed copy, so the shard that owns an event finds
//! where to push it without a hop.

use std::collections::HashMap;

use protocol::rules::{Action, Rule};

use super::records::{RoutingKey, RoutingRecord};
use crate::push::PushTarget;

#[derive(Debug, Default)]
pub struct RoutingTable {
    records: HashMap<RoutingKey, RoutingRecord>,
    rules: HashMap<RoutingKey, Rule>,
    actions: HashMap<RoutingKey, Action>,
}

impl RoutingTable {
    pub fn put(&mut self, record: RoutingRecord) {
        let key = RoutingKey { project_id: record.project_id.clone(), id: record.id.clone() };
        self.rules.remove(&key);
        self.actions.remove(&key);
        let parsed = if record.is_action {
            protocol::json::from_bytes::<Action>(record.json.as_bytes())
                .map(|a| drop(self.actions.insert(key.clone(), a)))
        } else {
            protocol::json::from_bytes::<Rule>(record.json.as_bytes())
                .map(|r| drop(self.rules.insert(key.clone(), r)))
        };
        if let Err(error) = parsed {
            tracing::error!(id = record.id, %error, "a stored routing document does not parse");
        }
        self.records.insert(key, record);
    }

    pub fn remove(&mut self, key: &RoutingKey) -> Option<RoutingRecord> {
        self.rules.remove(key);
        self.actions.remove(key);
        self.records.remove(key)
    }

    pub fn rule(&self, project_id: &str, rule_id: &str) -> Option<&Rule> {
        self.rules.get(&RoutingKey { project_id: project_id.into(), id: rule_id.into() })
    }

    pub fn action(&self, project_id: &str, action_id: &str) -> Option<&Action> {
        self.actions.get(&RoutingKey { project_id: project_id.into(), id: action_id.into() })
    }

    /// The project's rules, ordered by id.
    pub fn rules_of(&self, project_id: &str) -> Vec<&Rule> {
        let mut rules: Vec<&Rule> =
            self.rules.iter().filter(|(k, _)| k.project_id == project_id).map(|(_, r)| r).collect();
        rules.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        rules
    }

    /// The project's actions, ordered by id.
    pub fn actions_of(&self, project_id: &str) -> Vec<&Action> {
        let mut actions: Vec<&Action> =
            self.actions.iter().filter(|(k, _)| k.project_id == project_id).map(|(_, a)| a).collect();
        actions.sort_by(|a, b| a.action_id.cmp(&b.action_id));
        actions
    }

    /// Where an event of `resource:event` in the project goes: the HTTP targets of the actions
    /// of every active rule with that subject (for an `APP` rule, only events of that app).
    pub fn targets(&self, project_id: &str, app_id: &str, resource: &str, event: &str) -> Vec<PushTarget> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        let rule_ids: Vec<&str> = self
            .rules
            .iter()
            .filter(|(key, rule)| {
                key.project_id == project_id
                    && rule.active
                    && rule.subject.resource == resource
                    && rule.subject.event == event
                    && (rule.app_type != "APP" || rule.app_id.as_deref() == Some(app_id))
            })
            .map(|(_, rule)| rule.rule_id.as_str())
            .collect();
        if rule_ids.is_empty() {
            return Vec::new();
        }
        let mut targets: Vec<PushTarget> = self
            .actions
            .iter()
            .filter(|(key, action)| {
                key.project_id == project_id && rule_ids.contains(&action.rule_id.as_str())
            })
            .filter_map(|(_, action)| action.channel_detail.http_forwarding.as_ref())
            .map(|http| PushTarget { url: http.url.clone(), token: http.token.clone() })
            .collect();
        targets.sort_by(|a, b| a.url.cmp(&b.url));
        targets.dedup();
        targets
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &RoutingRecord> {
        self.records.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, is_action: bool, json: String) -> RoutingRecord {
        RoutingRecord { project_id: "p".into(), id: id.into(), is_action, json }
    }

    fn rule(id: &str, resource: &str, active: bool) -> RoutingRecord {
        let json = format!(
            r#"{{"rule_id":"{id}","subject":{{"resource":"{resource}","event":"update"}},"app_type":"GLOBAL","active":{active}}}"#
        );
        record(id, false, json)
    }

    fn action(id: &str, rule_id: &str, url: &str) -> RoutingRecord {
        let json = format!(
            r#"{{"action_id":"{id}","rule_id":"{rule_id}","channel":"HTTP_FORWARDING","channel_detail":{{"http_forwarding":{{"url":"{url}"}}}}}}"#
        );
        record(id, true, json)
    }

    #[test]
    fn only_active_rules_of_the_subject_route_to_their_actions() {
        let mut table = RoutingTable::default();
        table.put(rule("r1", "device.status", true));
        table.put(rule("r2", "device.status", false));
        table.put(rule("r3", "device.message.status", true));
        table.put(action("a1", "r1", "http://one/"));
        table.put(action("a2", "r2", "http://two/"));
        table.put(action("a3", "r3", "http://three/"));
        table.put(action("a4", "r1", "http://one/"));
        let urls = |t: &RoutingTable, r: &str| -> Vec<String> {
            t.targets("p", "app", r, "update").into_iter().map(|t| t.url).collect()
        };
        assert_eq!(urls(&table, "device.status"), ["http://one/"], "inactive r2 is silent; duplicates merge");
        assert_eq!(urls(&table, "device.message.status"), ["http://three/"]);
        assert!(table.targets("other", "app", "device.status", "update").is_empty());
        table.remove(&RoutingKey { project_id: "p".into(), id: "r1".into() });
        assert!(urls(&table, "device.status").is_empty());
        assert_eq!(table.rules_of("p").len(), 2);
        assert_eq!(table.actions_of("p").len(), 4);
    }
}
