//! A write the log refuses (here: the log is closed) leaves memory as it was: the caller is
//! told "unavailable", and later reads do not see the change either.

mod common;

use std::rc::Rc;

use shards::log::Durability;
use shards::mesh::Mesh;
use shards::messages::{DeviceUpdate, Reply, Request, ShardError};
use shards::registry::records::{DeviceRecord, ProductKey, ProductRecord};
use shards::registry::{Shard, ShardConfig};
use shards::runtime::{run_shards, RuntimeConfig, StopFlag};

#[derive(Debug)]
struct Failure(String);

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure(error.to_string())
    }
}

fn device(device_id: &str) -> DeviceRecord {
    DeviceRecord { device_name: Some("before".into()), ..common::device(device_id, 1) }
}

fn expect(condition: bool, what: &str) -> Result<(), Failure> {
    if condition {
        Ok(())
    } else {
        Err(Failure(what.into()))
    }
}

async fn check(mesh: Rc<Mesh>, dir: std::path::PathBuf) -> Result<(), Failure> {
    let config = ShardConfig {
        data_dir: dir,
        durability: Durability::Fsync,
        flush_interval_us: 100,
        compaction_bytes: 1 << 20,
    };
    let shard = Shard::open(mesh, &config).await.map_err(|e| Failure(e.to_string()))?;
    let product = ProductRecord {
        record_id: 1,
        project_id: "p1".into(),
        product_id: "meter".into(),
        product_json: "{}".into(),
    };
    shard.put_product(product.clone()).await.map_err(|e| Failure(e.to_string()))?;
    expect(
        matches!(shard.handle(Request::AddDevice(Box::new(device("d1")))).await, Reply::Device(_)),
        "add",
    )?;
    shard.close().await;

    let show = || Request::ShowDevice { project_id: "p1".into(), device_id: "d1".into() };
    let rename = DeviceUpdate { device_name: Some("after".into()), ..Default::default() };
    let update = shard
        .handle(Request::UpdateDevice { project_id: "p1".into(), device_id: "d1".into(), update: rename })
        .await;
    expect(matches!(update, Reply::Failed(ShardError::Unavailable(_))), "a refused update says unavailable")?;
    let shown = shard.handle(show()).await;
    expect(
        matches!(&shown, Reply::Device(d) if d.device_name.as_deref() == Some("before")),
        "update undone",
    )?;

    let delete =
        shard.handle(Request::DeleteDevice { project_id: "p1".into(), device_id: "d1".into() }).await;
    expect(matches!(delete, Reply::Failed(ShardError::Unavailable(_))), "a refused delete says unavailable")?;
    expect(matches!(shard.handle(show()).await, Reply::Device(_)), "delete undone")?;

    let add = shard.handle(Request::AddDevice(Box::new(device("d2")))).await;
    expect(matches!(add, Reply::Failed(ShardError::Unavailable(_))), "a refused add says unavailable")?;
    let missing = shard.handle(Request::ShowDevice { project_id: "p1".into(), device_id: "d2".into() }).await;
    expect(missing == Reply::Failed(ShardError::DeviceNotFound), "add undone")?;

    let renamed = ProductRecord { product_json: "{\"name\":\"x\"}".into(), ..product.clone() };
    expect(shard.put_product(renamed).await.is_err(), "a refused product update fails")?;
    expect(shard.products().get("p1", "meter") == Some(&product), "product update undone")?;
    let key = ProductKey { project_id: "p1".into(), product_id: "meter".into() };
    expect(shard.delete_product(key).await.is_err(), "a refused product delete fails")?;
    let kept = shard.products().get("p1", "meter").is_some();
    expect(kept, "product delete undone")
}

#[test]
fn writes_the_log_refuses_leave_memory_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let config = RuntimeConfig {
        shard_count: 1,
        io_memory_bytes: 1 << 20,
        io_ring_depth: shards::runtime::DEFAULT_IO_RING_DEPTH,
        spin_before_park_us: 0,
        pin_cpus: false,
        mesh_capacity: 4,
    };
    let outcome = run_shards(&config, &StopFlag::new(), move |mesh| check(mesh, path.clone()));
    if let Err(Failure(message)) = outcome {
        panic!("{message}");
    }
}
