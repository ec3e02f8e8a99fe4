//! The devices a shard owns: a plain in-memory table, no I/O. The shard shell decides when a
//! change is logged; this type only keeps the maps consistent.
//!
//! Two indexes: by device id (lookups) and by record id (list pages in descending record-id
//! order, as IoTDA's `marker` paging requires); and how many sub-devices of each gateway live
//! here (a sub-device's `gateway_id` is not its own id).

use std::collections::{BTreeSet, HashMap};

use super::records::DeviceRecord;

/// Filters of ListDevices that a shard can apply locally.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFilter {
    pub project_id: String,
    pub product_id: Option<String>,
    pub node_id: Option<String>,
    pub device_name: Option<String>,
    pub gateway_id: Option<String>,
    pub app_id: Option<String>,
    /// Inclusive bounds on `create_time`, unix ms.
    pub created_from_ms: Option<i64>,
    pub created_to_ms: Option<i64>,
}

impl DeviceFilter {
    pub fn matches(&self, device: &DeviceRecord) -> bool {
        let equal = |wanted: &Option<String>, actual: &str| wanted.as_deref().is_none_or(|w| w == actual);
        device.project_id == self.project_id
            && equal(&self.product_id, &device.product_id)
            && equal(&self.node_id, &device.node_id)
            // A gateway's children, not the gateway (whose gateway_id is its own id).
            && self.gateway_id.as_deref().is_none_or(|w| device.gateway_id == w && device.device_id != w)
            && equal(&self.app_id, &device.app_id)
            && self.device_name.as_deref().is_none_or(|w| device.device_name.as_deref() == Some(w))
            && self.created_from_ms.is_none_or(|from| device.create_time_ms >= from)
            && self.created_to_ms.is_none_or(|to| device.create_time_ms <= to)
    }
}

/// One shard's slice of a list page: the first `take` matches below `marker`, newest first, and
/// how many devices match the filter in all.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSlice {
    pub devices: Vec<DeviceRecord>,
    pub matching_count: u64,
}

#[derive(Debug, Default)]
pub struct DeviceTable {
    by_device_id: HashMap<String, DeviceRecord>,
    /// Ordered by record id; the device id breaks ties, so even two devices with one record
    /// id (a clock stepped back across restarts) keep separate entries.
    by_record_id: BTreeSet<(u128, String)>,
    /// Sub-devices on this shard per gateway id.
    children: HashMap<String, BTreeSet<String>>,
}

impl DeviceTable {
    pub fn len(&self) -> usize {
        self.by_device_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_device_id.is_empty()
    }

    pub fn get(&self, device_id: &str) -> Option<&DeviceRecord> {
        self.by_device_id.get(device_id)
    }

    /// Inserts or replaces the device with this device id.
    pub fn put(&mut self, device: DeviceRecord) {
        if let Some(old) = self.by_device_id.remove(&device.device_id) {
            self.by_record_id.remove(&(old.record_id, old.device_id.clone()));
            self.count_child(&old, false);
        }
        self.count_child(&device, true);
        self.by_record_id.insert((device.record_id, device.device_id.clone()));
        self.by_device_id.insert(device.device_id.clone(), device);
    }

    pub fn remove(&mut self, device_id: &str) -> Option<DeviceRecord> {
        let removed = self.by_device_id.remove(device_id)?;
        self.by_record_id.remove(&(removed.record_id, removed.device_id.clone()));
        self.count_child(&removed, false);
        Some(removed)
    }

    fn count_child(&mut self, device: &DeviceRecord, added: bool) {
        if device.gateway_id == device.device_id {
            return;
        }
        let children = self.children.entry(device.gateway_id.clone()).or_default();
        if added {
            children.insert(device.device_id.clone());
        } else {
            children.remove(&device.device_id);
            if children.is_empty() {
                self.children.remove(&device.gateway_id);
            }
        }
    }

    /// Sub-devices of `gateway_id` on this shard.
    pub fn count_children(&self, gateway_id: &str) -> u64 {
        self.children.get(gateway_id).map_or(0, |children| children.len() as u64)
    }

    /// The ids of the sub-devices of `gateway_id` on this shard.
    pub fn children_of(&self, gateway_id: &str) -> Vec<String> {
        self.children.get(gateway_id).map(|children| children.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn iter(&self) -> impl Iterator<Item = &DeviceRecord> {
        self.by_device_id.values()
    }

    /// Devices matching `filter` with record id below `marker`, newest first, at most `take`.
    pub fn slice(&self, filter: &DeviceFilter, marker: u128, take: usize) -> DeviceSlice {
        let devices = self
            .by_record_id
            .range(..(marker, String::new()))
            .rev()
            .filter_map(|(_, device_id)| self.by_device_id.get(device_id))
            .filter(|device| filter.matches(device))
            .take(take)
            .cloned()
            .collect();
        let matching_count = self.by_device_id.values().filter(|d| filter.matches(d)).count() as u64;
        DeviceSlice { devices, matching_count }
    }

    /// Turns every ONLINE device OFFLINE (at start-up: no connection survives a restart).
    pub fn mark_online_offline(&mut self) {
        for device in self.by_device_id.values_mut() {
            if device.status == super::records::DeviceStatus::Online {
                device.status = super::records::DeviceStatus::Offline;
            }
        }
    }

    /// The highest record id here (0 when empty).
    pub fn record_id_max(&self) -> u128 {
        self.by_record_id.last().map_or(0, |(record_id, _)| *record_id)
    }

    /// How many devices of this project use this product.
    pub fn count_of_product(&self, project_id: &str, product_id: &str) -> u64 {
        self.by_device_id
            .values()
            .filter(|d| d.project_id == project_id && d.product_id == product_id)
            .count() as u64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::registry::records::DeviceStatus;

    pub(crate) fn device(device_id: &str, record_id: u128, product_id: &str) -> DeviceRecord {
        DeviceRecord {
            record_id,
            project_id: "p1".into(),
            device_id: device_id.into(),
            node_id: device_id.into(),
            product_id: product_id.into(),
            app_id: "default".into(),
            gateway_id: device_id.into(),
            device_name: None,
            description: None,
            auth_type: "SECRET".into(),
            secret: Some("secret-1".into()),
            fingerprint: None,
            secondary_fingerprint: None,
            secondary_secret: None,
            secure_access: false,
            timeout_s: 0,
            extension_info_json: None,
            initial_shadow_json: None,
            status: DeviceStatus::Inactive,
            create_time_ms: record_id as i64,
            connection_status_update_time_ms: None,
            active_time_ms: None,
        }
    }

    #[test]
    fn sub_devices_are_counted_per_gateway() {
        let mut table = DeviceTable::default();
        table.put(device("gw", 1, "p"));
        for (id, record_id) in [("s1", 2), ("s2", 3)] {
            table.put(DeviceRecord { gateway_id: "gw".into(), ..device(id, record_id, "p") });
        }
        assert_eq!(table.count_children("gw"), 2);
        table.put(DeviceRecord {
            gateway_id: "gw".into(),
            device_name: Some("renamed".into()),
            ..device("s1", 2, "p")
        });
        assert_eq!(table.count_children("gw"), 2, "an update is not a new child");
        table.remove("s1");
        table.remove("s2");
        assert_eq!(table.count_children("gw"), 0);
        assert_eq!(table.count_children("s1"), 0);
    }

    fn filter() -> DeviceFilter {
        DeviceFilter { project_id: "p1".into(), ..Default::default() }
    }

    #[test]
    fn slices_are_newest_first_below_the_marker() {
        let mut table = DeviceTable::default();
        for n in 1..=5u128 {
            table.put(device(&format!("d{n}"), n, if n % 2 == 0 { "even" } else { "odd" }));
        }
        let slice = table.slice(&filter(), u128::MAX, 2);
        assert_eq!(slice.devices.iter().map(|d| d.record_id).collect::<Vec<_>>(), [5, 4]);
        assert_eq!(slice.matching_count, 5);
        let next = table.slice(&filter(), 4, 10);
        assert_eq!(next.devices.iter().map(|d| d.record_id).collect::<Vec<_>>(), [3, 2, 1]);
        let odd = DeviceFilter { product_id: Some("odd".into()), ..filter() };
        assert_eq!(table.slice(&odd, u128::MAX, 10).matching_count, 3);
        let other_project = DeviceFilter { project_id: "p2".into(), ..Default::default() };
        assert_eq!(table.slice(&other_project, u128::MAX, 10).matching_count, 0);
    }

    #[test]
    fn replacing_and_removing_keep_both_indexes_in_step() {
        let mut table = DeviceTable::default();
        table.put(device("d1", 1, "x"));
        let mut renamed = device("d1", 1, "x");
        renamed.device_name = Some("pump".into());
        table.put(renamed);
        assert_eq!(table.len(), 1);
        assert_eq!(table.slice(&filter(), u128::MAX, 10).devices.len(), 1);
        assert!(table.remove("d1").is_some());
        assert!(table.remove("d1").is_none());
        assert!(table.slice(&filter(), u128::MAX, 10).devices.is_empty());
        assert_eq!(table.count_of_product("p1", "x"), 0);
    }

    #[test]
    fn two_devices_with_one_record_id_stay_apart() {
        let mut table = DeviceTable::default();
        table.put(device("a", 7, "x"));
        table.put(device("b", 7, "x"));
        assert_eq!(table.slice(&filter(), u128::MAX, 10).devices.len(), 2);
        table.remove("a");
        let left = table.slice(&filter(), u128::MAX, 10).devices;
        assert_eq!(left.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(table.record_id_max(), 7);
    }
}
