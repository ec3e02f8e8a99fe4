//! What shard 0 writes and every shard keeps a copy of: products and routing rules/actions.
//! Shard 0 makes a change durable in its own log first, then sends it to every other shard
//! over the mesh; the copies are never logged (they come back from shard 0 at every start,
//! [`Shard::replicate_all_products`]).

use std::cell::Ref;
use std::rc::Rc;

use super::products::ProductTable;
use super::records::{self, ProductKey, ProductRecord, RegistryRecord};
use super::{routing, Shard};
use crate::messages::{Reply, Request, ShardError};

impl Shard {
    /// The products this shard knows (shard 0: the authoritative set).
    pub fn products(&self) -> Ref<'_, ProductTable> {
        self.products.borrow()
    }

    /// Shard 0 only: makes `product` durable, then copies it to every other shard.
    pub async fn put_product(self: &Rc<Self>, product: ProductRecord) -> Result<(), ShardError> {
        assert_eq!(self.id(), 0, "only shard 0 writes products");
        let key =
            ProductKey { project_id: product.project_id.clone(), product_id: product.product_id.clone() };
        self.write_product(&key, Some(product.clone())).await?;
        self.replicate(|| Request::ReplicateProduct(product.clone())).await
    }

    /// Shard 0 only: removes a product durably and from every replica.
    pub async fn delete_product(self: &Rc<Self>, key: ProductKey) -> Result<(), ShardError> {
        assert_eq!(self.id(), 0, "only shard 0 writes products");
        self.write_product(&key, None).await?;
        self.replicate(|| Request::ForgetProduct(key.clone())).await
    }

    /// [`Shard::write_device`] for products.
    async fn write_product(
        self: &Rc<Self>,
        key: &ProductKey,
        written: Option<ProductRecord>,
    ) -> Result<(), ShardError> {
        let previous = {
            let mut products = self.products.borrow_mut();
            let previous = products.get(&key.project_id, &key.product_id).cloned();
            match &written {
                Some(product) => products.put(product.clone()),
                None => drop(products.remove(key)),
            }
            previous
        };
        let record = match &written {
            Some(product) => RegistryRecord::ProductPut(product.clone()),
            None => RegistryRecord::ProductDelete(key.clone()),
        };
        let result = self.persist(record).await;
        if result.is_err() {
            let mut products = self.products.borrow_mut();
            if products.get(&key.project_id, &key.product_id) == written.as_ref() {
                match previous {
                    Some(product) => products.put(product),
                    None => drop(products.remove(key)),
                }
            }
        }
        result
    }

    /// The routing rules and actions this shard knows (shard 0: the authoritative set).
    pub fn routing(&self) -> Ref<'_, routing::RoutingTable> {
        self.routing.borrow()
    }

    /// Shard 0 only: makes a routing rule or action durable, then copies it to every shard.
    pub async fn put_routing(self: &Rc<Self>, record: records::RoutingRecord) -> Result<(), ShardError> {
        assert_eq!(self.id(), 0, "only shard 0 writes routing rules");
        let key = records::RoutingKey { project_id: record.project_id.clone(), id: record.id.clone() };
        let previous =
            self.routing.borrow().iter().find(|r| r.project_id == key.project_id && r.id == key.id).cloned();
        self.routing.borrow_mut().put(record.clone());
        if let Err(error) = self.persist(RegistryRecord::RoutingPut(record.clone())).await {
            let mut table = self.routing.borrow_mut();
            match previous {
                Some(previous) => table.put(previous),
                None => drop(table.remove(&key)),
            }
            return Err(error);
        }
        self.replicate(|| Request::ReplicateRouting(record.clone())).await
    }

    /// Shard 0 only: removes a routing rule or action durably and from every copy.
    pub async fn delete_routing(self: &Rc<Self>, key: records::RoutingKey) -> Result<(), ShardError> {
        assert_eq!(self.id(), 0, "only shard 0 writes routing rules");
        let previous = self.routing.borrow_mut().remove(&key);
        if let Err(error) = self.persist(RegistryRecord::RoutingDelete(key.clone())).await {
            if let Some(previous) = previous {
                self.routing.borrow_mut().put(previous);
            }
            return Err(error);
        }
        self.replicate(|| Request::ForgetRouting(key.clone())).await
    }

    /// Shard 0 at start-up: sends every recovered product to every other shard.
    pub async fn replicate_all_products(self: &Rc<Self>) -> Result<(), ShardError> {
        let products: Vec<ProductRecord> = self.products.borrow().iter().cloned().collect();
        for product in products {
            self.replicate(|| Request::ReplicateProduct(product.clone())).await?;
        }
        let routing: Vec<records::RoutingRecord> = self.routing.borrow().iter().cloned().collect();
        for record in routing {
            self.replicate(|| Request::ReplicateRouting(record.clone())).await?;
        }
        Ok(())
    }

    async fn replicate(self: &Rc<Self>, request: impl Fn() -> Request) -> Result<(), ShardError> {
        let me = self.id();
        let tasks: Vec<_> = (0..self.shard_count())
            .filter(|&target| target != me)
            .map(|target| {
                let (mesh, request) = (self.mesh.clone(), request());
                glommio::spawn_local(async move { mesh.call(target, request).await })
            })
            .collect();
        for task in tasks {
            if let Reply::Failed(error) = task.await {
                return Err(error);
            }
        }
        Ok(())
    }
}
