//! Rebuilding a shard's tables from its snapshot and log tail, by revision.
//!
//! The snapshot opens with a [`RegistryRecord::SnapshotMark`] whose revision `R` covers it:
//! every change up to `R` is in the snapshot's records. A tail record applies only when its
//! revision is above both `R` and the revision of the last change applied to its key, so a
//! change that reached the log late (after a newer change of the same key, or after the
//! snapshot cut) can never overwrite newer state or bring back a deleted key.

use std::collections::HashMap;
use std::hash::Hash;

use super::devices::DeviceTable;
use super::products::ProductTable;
use super::records::{
    BatchResultsRecord, BatchTaskRecord, DecodeError, DeviceRecord, MessageRecord, ProductRecord,
    RegistryRecord, RoutingRecord,
};
use crate::log::LogRecord;

/// The rebuilt tables and the last revision the shard had used.
#[derive(Debug, Default)]
pub struct Replayed {
    pub devices: DeviceTable,
    pub products: ProductTable,
    /// Shadow JSON by device id.
    pub shadows: HashMap<String, String>,
    /// Downlink messages of devices that still exist.
    pub messages: Vec<MessageRecord>,
    /// Routing rules and actions (shard 0).
    pub routing: Vec<RoutingRecord>,
    /// Batch tasks (shard 0), each with the results recorded for it, oldest first.
    pub batch_tasks: Vec<(BatchTaskRecord, Vec<BatchResultsRecord>)>,
    pub revision: u64,
}

/// Applies `snapshot` (all of it) and then `tail` (by revision).
pub fn replay(snapshot: &[LogRecord], tail: &[LogRecord]) -> Result<Replayed, DecodeError> {
    let mut state = ReplayState::default();
    for record in snapshot {
        let (revision, record) = RegistryRecord::decode(record)?;
        if record == RegistryRecord::SnapshotMark {
            state.floor = revision;
        }
        state.apply(revision, record, true);
    }
    for record in tail {
        let (revision, record) = RegistryRecord::decode(record)?;
        state.apply(revision, record, false);
    }
    Ok(state.finish())
}

#[derive(Default)]
struct ReplayState {
    floor: u64,
    revision: u64,
    devices: HashMap<String, (u64, Option<DeviceRecord>)>,
    products: HashMap<(String, String), (u64, Option<ProductRecord>)>,
    shadows: HashMap<String, (u64, Option<String>)>,
    messages: HashMap<(String, String), (u64, Option<MessageRecord>)>,
    routing: HashMap<(String, String), (u64, Option<RoutingRecord>)>,
    batch_tasks: HashMap<(String, String), (u64, Option<BatchTaskRecord>)>,
    /// Results by task, in log order (a target's result is written once, so order is moot).
    batch_results: HashMap<(String, String), Vec<BatchResultsRecord>>,
    /// The newest delete of each device id: its messages from before it are gone.
    device_deleted_at: HashMap<String, u64>,
}

impl ReplayState {
    fn apply(&mut self, revision: u64, record: RegistryRecord, from_snapshot: bool) {
        self.revision = self.revision.max(revision);
        let floor = if from_snapshot { 0 } else { self.floor };
        match record {
            RegistryRecord::DevicePut(device) => {
                set(&mut self.devices, device.device_id.clone(), revision, floor, Some(*device))
            }
            RegistryRecord::DeviceDelete(key) => {
                let deleted_at = self.device_deleted_at.entry(key.device_id.clone()).or_default();
                *deleted_at = (*deleted_at).max(revision);
                // A device's shadow goes with it.
                set(&mut self.shadows, key.device_id.clone(), revision, floor, None);
                set(&mut self.devices, key.device_id, revision, floor, None)
            }
            RegistryRecord::ShadowPut(shadow) => {
                set(&mut self.shadows, shadow.device_id, revision, floor, Some(shadow.shadow_json))
            }
            RegistryRecord::ProductPut(product) => {
                let key = (product.project_id.clone(), product.product_id.clone());
                set(&mut self.products, key, revision, floor, Some(product))
            }
            RegistryRecord::ProductDelete(key) => {
                set(&mut self.products, (key.project_id, key.product_id), revision, floor, None)
            }
            RegistryRecord::MessagePut(message) => {
                let key = (message.device_id.clone(), message.message_id.clone());
                set(&mut self.messages, key, revision, floor, Some(*message))
            }
            RegistryRecord::MessageDelete(key) => {
                set(&mut self.messages, (key.device_id, key.message_id), revision, floor, None)
            }
            RegistryRecord::RoutingPut(routing) => {
                let key = (routing.project_id.clone(), routing.id.clone());
                set(&mut self.routing, key, revision, floor, Some(routing))
            }
            RegistryRecord::RoutingDelete(key) => {
                set(&mut self.routing, (key.project_id, key.id), revision, floor, None)
            }
            RegistryRecord::BatchTaskPut(task) => {
                let key = (task.project_id.clone(), task.task_id.clone());
                set(&mut self.batch_tasks, key, revision, floor, Some(*task))
            }
            RegistryRecord::BatchResults(results) => {
                let key = (results.project_id.clone(), results.task_id.clone());
                self.batch_results.entry(key).or_default().push(*results);
            }
            RegistryRecord::BatchTaskDelete(key) => {
                set(&mut self.batch_tasks, (key.project_id, key.task_id), revision, floor, None)
            }
            RegistryRecord::SnapshotMark => {}
        }
    }

    fn finish(self) -> Replayed {
        let mut replayed = Replayed { revision: self.revision, ..Default::default() };
        for device in self.devices.into_values().filter_map(|(_, device)| device) {
            replayed.devices.put(device);
        }
        for product in self.products.into_values().filter_map(|(_, product)| product) {
            replayed.products.put(product);
        }
        replayed.shadows = self
            .shadows
            .into_iter()
            .filter_map(|(device_id, (_, shadow))| shadow.map(|json| (device_id, json)))
            .filter(|(device_id, _)| replayed.devices.get(device_id).is_some())
            .collect();
        // A deleted device's messages go with it (its delete record is newer than them, and a
        // device re-registered under the same id starts with an empty history).
        replayed.routing = self.routing.into_values().filter_map(|(_, routing)| routing).collect();
        let mut batch_results = self.batch_results;
        replayed.batch_tasks = self
            .batch_tasks
            .into_iter()
            .filter_map(|(key, (_, task))| {
                task.map(|task| (task, batch_results.remove(&key).unwrap_or_default()))
            })
            .collect();
        replayed.messages = self
            .messages
            .into_values()
            .filter_map(|(revision, message)| message.map(|m| (revision, m)))
            .filter(|(revision, message)| {
                replayed.devices.get(&message.device_id).is_some()
                    && self.device_deleted_at.get(&message.device_id).is_none_or(|deleted| revision > deleted)
            })
            .map(|(_, message)| message)
            .collect();
        replayed
    }
}

/// Records `value` for `key` unless a change at or above `revision` (or the floor) is there.
fn set<K: Eq + Hash, V>(
    map: &mut HashMap<K, (u64, Option<V>)>,
    key: K,
    revision: u64,
    floor: u64,
    value: Option<V>,
) {
    let newest = map.get(&key).map_or(floor, |(applied, _)| (*applied).max(floor));
    if revision > newest {
        map.insert(key, (revision, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::devices::tests::device;
    use crate::registry::records::DeviceKey;

    fn put(revision: u64, device_id: &str) -> LogRecord {
        RegistryRecord::DevicePut(Box::new(device(device_id, revision.into(), "x"))).encode(revision)
    }

    fn delete(revision: u64, device_id: &str) -> LogRecord {
        RegistryRecord::DeviceDelete(DeviceKey { device_id: device_id.into() }).encode(revision)
    }

    #[test]
    fn a_deleted_devices_messages_stay_gone_when_its_id_is_registered_again() {
        use crate::mailbox::history::tests::message;
        let old = RegistryRecord::MessagePut(Box::new(message("d", "old", 1, 0))).encode(2);
        let new = RegistryRecord::MessagePut(Box::new(message("d", "new", 2, 0))).encode(5);
        let replayed = replay(&[], &[put(1, "d"), old, delete(3, "d"), put(4, "d"), new]).unwrap();
        let ids: Vec<&str> = replayed.messages.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["new"]);
    }

    fn ids(replayed: &Replayed) -> Vec<(String, u128)> {
        let mut ids: Vec<_> = replayed.devices.iter().map(|d| (d.device_id.clone(), d.record_id)).collect();
        ids.sort();
        ids
    }

    #[test]
    fn in_order_changes_replay_as_written() {
        let replayed = replay(&[], &[put(1, "a"), put(2, "b"), put(3, "a"), delete(4, "b")]).unwrap();
        assert_eq!(ids(&replayed), [("a".into(), 3)]);
        assert_eq!(replayed.revision, 4);
    }

    #[test]
    fn a_late_older_change_never_overwrites_a_newer_one() {
        // Revision 2 changed memory before revision 3 but reached the log after it.
        let replayed = replay(&[], &[put(1, "a"), put(3, "a"), put(2, "a")]).unwrap();
        assert_eq!(ids(&replayed), [("a".into(), 3)]);
        let replayed = replay(&[], &[put(1, "a"), delete(3, "a"), put(2, "a")]).unwrap();
        assert!(ids(&replayed).is_empty(), "a late put does not bring back a deleted device");
    }

    #[test]
    fn the_snapshot_covers_everything_up_to_its_mark() {
        let snapshot = [RegistryRecord::SnapshotMark.encode(10), put(10, "a")];
        // 7 was already in the snapshot's state; 11 is newer.
        let tail = [put(7, "gone"), delete(8, "a"), put(11, "b")];
        let replayed = replay(&snapshot, &tail).unwrap();
        assert_eq!(ids(&replayed), [("a".into(), 10), ("b".into(), 11)]);
        assert_eq!(replayed.revision, 11);
        let tail = [delete(12, "a")];
        assert!(ids(&replay(&snapshot, &tail).unwrap()).is_empty());
    }

    #[test]
    fn a_shadow_lives_and_dies_with_its_device() {
        let shadow = |revision: u64| {
            RegistryRecord::ShadowPut(crate::registry::records::ShadowRecord {
                device_id: "a".into(),
                shadow_json: format!("{{\"r\":{revision}}}"),
            })
            .encode(revision)
        };
        let replayed = replay(&[], &[put(1, "a"), shadow(2), shadow(3)]).unwrap();
        assert_eq!(replayed.shadows["a"], "{\"r\":3}");
        let replayed = replay(&[], &[put(1, "a"), shadow(2), delete(3, "a")]).unwrap();
        assert!(replayed.shadows.is_empty());
    }
}
