//! Two real shards on two glommio executors: shard 0 writes a product and it reaches shard 1's
//! replica; devices are registered on their home shard through the mesh and come back from
//! show, list and delete; everything is back after the shards restart on the same data dir.

mod common;

use std::rc::Rc;
use std::sync::Arc;

use protocol::routing::home_shard;
use shards::log::Durability;
use shards::messages::{Reply, Request, ShardError};
use shards::record_id::RECORD_ID_MAX;
use shards::registry::devices::DeviceFilter;
use shards::registry::records::ProductRecord;
use shards::registry::{Shard, ShardConfig};
use shards::runtime::{run_shards, RuntimeConfig, StopFlag};

const SHARDS: usize = 2;

fn runtime() -> RuntimeConfig {
    RuntimeConfig {
        shard_count: SHARDS,
        io_memory_bytes: 1 << 20,
        io_ring_depth: shards::runtime::DEFAULT_IO_RING_DEPTH,
        spin_before_park_us: 0,
        pin_cpus: false,
        mesh_capacity: 16,
    }
}

/// Runs `shard_zero` on shard 0 while the other shards serve; shard k > 0 then runs `others`.
fn with_shards<Z, O>(config: ShardConfig, shard_zero: Z, others: O) -> Result<(), String>
where
    Z: Fn(Rc<Shard>) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>
        + Send
        + Sync
        + 'static,
    O: Fn(&Shard) -> Result<(), String> + Send + Sync + 'static,
{
    let stop = StopFlag::new();
    let shared = Arc::new((config, stop, shard_zero, others));
    let stop_for_runtime = shared.1.clone();
    run_shards(&runtime(), &stop_for_runtime, move |mesh| {
        let shared = shared.clone();
        async move {
            let (config, stop, shard_zero, others) = &*shared;
            let shard = Shard::open(mesh, config).await.map_err(|e| Wrapped(e.to_string()))?;
            shard.start_serving();
            let result = if shard.id() == 0 {
                let result = shard_zero(shard.clone()).await;
                stop.stop();
                result
            } else {
                stop.wait().await;
                others(&shard)
            };
            shard.close().await;
            result.map_err(Wrapped)
        }
    })
    .map_err(|error: Wrapped| error.0)
}

/// `run_shards` wants an error type that an `io::Error` converts into.
#[derive(Debug)]
struct Wrapped(String);

impl From<std::io::Error> for Wrapped {
    fn from(error: std::io::Error) -> Self {
        Wrapped(error.to_string())
    }
}

#[test]
fn products_replicate_and_devices_live_on_their_home_shard() {
    let dir = tempfile::tempdir().unwrap();
    let config = ShardConfig {
        data_dir: dir.path().into(),
        durability: Durability::Fsync,
        flush_interval_us: 100,
        compaction_bytes: 1 << 20,
    };
    let ids: Vec<String> = (0..20).map(|n| format!("meter_node{n}")).collect();
    assert!((0..SHARDS).all(|s| ids.iter().any(|id| home_shard(id, SHARDS) == s)), "ids span every shard");
    let ids = Arc::new(ids);

    let first_ids = ids.clone();
    with_shards(
        config.clone(),
        move |shard| {
            let ids = first_ids.clone();
            Box::pin(async move {
                let product = ProductRecord {
                    record_id: 1,
                    project_id: "p1".into(),
                    product_id: "meter".into(),
                    product_json: "{}".into(),
                };
                shard.put_product(product).await.map_err(|e| e.to_string())?;
                for (n, id) in ids.iter().enumerate() {
                    let reply = shard
                        .call(
                            home_shard(id, SHARDS),
                            Request::AddDevice(Box::new(common::device(id, n as u128 + 10))),
                        )
                        .await;
                    if !matches!(reply, Reply::Device(_)) {
                        return Err(format!("adding {id}: {reply:?}"));
                    }
                }
                let duplicate = shard
                    .call(
                        home_shard(&ids[0], SHARDS),
                        Request::AddDevice(Box::new(common::device(&ids[0], 99))),
                    )
                    .await;
                if duplicate != Reply::Failed(ShardError::DeviceExists) {
                    return Err(format!("duplicate accepted: {duplicate:?}"));
                }
                let filter = DeviceFilter { project_id: "p1".into(), ..Default::default() };
                let replies = shard
                    .call_all(|_| Request::ListDevices {
                        filter: filter.clone(),
                        marker: RECORD_ID_MAX,
                        take: 100,
                    })
                    .await;
                let total: u64 = replies
                    .iter()
                    .map(|r| match r {
                        Reply::Devices(s) => s.matching_count,
                        _ => 0,
                    })
                    .sum();
                if total != 20 {
                    return Err(format!("listed {total} devices, not 20: {replies:?}"));
                }
                Ok(())
            })
        },
        |shard| match shard.products().get("p1", "meter") {
            Some(_) => Ok(()),
            None => Err(format!("shard {} has no replica of the product", shard.id())),
        },
    )
    .unwrap();

    // Restart on the same directory: shard 0 replicates again, devices are where they were.
    let second_ids = ids.clone();
    with_shards(
        config,
        move |shard| {
            let ids = second_ids.clone();
            Box::pin(async move {
                shard.replicate_all_products().await.map_err(|e| e.to_string())?;
                for id in ids.iter() {
                    let show = Request::ShowDevice { project_id: "p1".into(), device_id: id.clone() };
                    match shard.call(home_shard(id, SHARDS), show).await {
                        Reply::Device(found) if found.device_id == *id => {}
                        other => return Err(format!("{id} after restart: {other:?}")),
                    }
                    let other_project =
                        Request::ShowDevice { project_id: "p2".into(), device_id: id.clone() };
                    if shard.call(home_shard(id, SHARDS), other_project).await
                        != Reply::Failed(ShardError::DeviceNotFound)
                    {
                        return Err(format!("{id} is visible to another project"));
                    }
                }
                Ok(())
            })
        },
        |shard| {
            shard
                .products()
                .get("p1", "meter")
                .map(|_| ())
                .ok_or_else(|| "replica lost after restart".to_string())
        },
    )
    .unwrap();
}
