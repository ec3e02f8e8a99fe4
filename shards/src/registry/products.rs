//! Products as a shard sees them. Shard 0 is the writer (it logs every change); every other
//! shard keeps a read-only replica fed by [`Request::ReplicateProduct`](crate::messages::Request).

use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use protocol::model::Product;

use super::records::{ProductKey, ProductRecord};

#[derive(Debug, Default)]
pub struct ProductTable {
    by_key: HashMap<(String, String), ProductRecord>,
    /// The parsed model of each product, for checking commands and properties without parsing
    /// its JSON per call. Absent only if a stored product does not parse (logged).
    models: HashMap<(String, String), Rc<Product>>,
    /// Ordered by record id, ties broken by the key (see `DeviceTable`).
    by_record_id: BTreeSet<(u128, (String, String))>,
}

impl ProductTable {
    pub fn get(&self, project_id: &str, product_id: &str) -> Option<&ProductRecord> {
        self.by_key.get(&(project_id.to_owned(), product_id.to_owned()))
    }

    /// The product's parsed model.
    pub fn model(&self, project_id: &str, product_id: &str) -> Option<Rc<Product>> {
        self.models.get(&(project_id.to_owned(), product_id.to_owned())).cloned()
    }

    pub fn put(&mut self, record: ProductRecord) {
        let key = (record.project_id.clone(), record.product_id.clone());
        match protocol::json::from_bytes::<Product>(record.product_json.as_bytes()) {
            Ok(model) => drop(self.models.insert(key.clone(), Rc::new(model))),
            Err(error) => {
                tracing::error!(product_id = record.product_id, %error, "a stored product does not parse");
                self.models.remove(&key);
            }
        }
        if let Some(old) = self.by_key.get(&key) {
            self.by_record_id.remove(&(old.record_id, key.clone()));
        }
        self.by_record_id.insert((record.record_id, key.clone()));
        self.by_key.insert(key, record);
    }

    pub fn remove(&mut self, key: &ProductKey) -> Option<ProductRecord> {
        let key = (key.project_id.clone(), key.product_id.clone());
        self.models.remove(&key);
        let removed = self.by_key.remove(&key)?;
        self.by_record_id.remove(&(removed.record_id, key));
        Some(removed)
    }

    /// The highest record id here (0 when empty).
    pub fn record_id_max(&self) -> u128 {
        self.by_record_id.last().map_or(0, |(record_id, _)| *record_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ProductRecord> {
        self.by_key.values()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The project's products with record id below `marker`, newest first, that pass `keep`.
    pub fn newest_below<'a>(
        &'a self,
        project_id: &'a str,
        marker: u128,
        keep: impl Fn(&ProductRecord) -> bool + 'a,
    ) -> impl Iterator<Item = &'a ProductRecord> + 'a {
        self.by_record_id
            .range(..(marker, (String::new(), String::new())))
            .rev()
            .filter_map(|(_, key)| self.by_key.get(key))
            .filter(move |record| record.project_id == project_id && keep(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(project_id: &str, product_id: &str, record_id: u128) -> ProductRecord {
        ProductRecord {
            record_id,
            project_id: project_id.into(),
            product_id: product_id.into(),
            product_json: "{}".into(),
        }
    }

    #[test]
    fn projects_do_not_see_each_other() {
        let mut table = ProductTable::default();
        table.put(product("p1", "x", 1));
        table.put(product("p2", "x", 2));
        table.put(product("p1", "y", 3));
        assert!(table.get("p1", "x").is_some());
        assert_eq!(table.get("p2", "x").unwrap().record_id, 2);
        let ids: Vec<_> = table.newest_below("p1", u128::MAX, |_| true).map(|r| r.record_id).collect();
        assert_eq!(ids, [3, 1]);
        table.remove(&ProductKey { project_id: "p1".into(), product_id: "y".into() });
        assert_eq!(table.newest_below("p1", u128::MAX, |_| true).count(), 1);
        assert_eq!(table.len(), 2);
    }
}
