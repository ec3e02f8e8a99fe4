//! Regression: a shard that dies with a request of ours in its queue must not leave us waiting
//! forever. The waiter fails with `Unreachable` once the peer's reply channel closes, and later
//! calls to that peer fail at once.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use shards::mesh::Mesh;
use shards::messages::{Reply, Request, ShardError};
use shards::runtime::{run_shards, RuntimeConfig, StopFlag};

#[derive(Debug)]
struct Failure(String);

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure(error.to_string())
    }
}

async fn shard_main(mesh: Rc<Mesh>) -> Result<(), Failure> {
    if mesh.shard_id() == 1 {
        // Take the request, never answer it, and exit.
        let received = Rc::new(Cell::new(false));
        let flag = received.clone();
        mesh.serve(Rc::new(move |_| {
            flag.set(true);
            Box::pin(std::future::pending())
        }));
        while !received.get() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        return Ok(());
    }
    mesh.serve(Rc::new(|_| Box::pin(async { Reply::Done })));
    let request = || Request::CountDevicesOfProduct { project_id: "p".into(), product_id: "x".into() };
    let first = mesh.call(1, request()).await;
    if first != Reply::Failed(ShardError::Unreachable(1)) {
        return Err(Failure(format!("waiting on a dead shard answered {first:?}")));
    }
    let second = mesh.call(1, request()).await;
    if second != Reply::Failed(ShardError::Unreachable(1)) {
        return Err(Failure(format!("a call to a dead shard answered {second:?}")));
    }
    Ok(())
}

#[test]
fn a_request_to_a_shard_that_dies_fails_instead_of_hanging() {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let config = RuntimeConfig {
            shard_count: 2,
            io_memory_bytes: 1 << 20,
            io_ring_depth: shards::runtime::DEFAULT_IO_RING_DEPTH,
            spin_before_park_us: 0,
            pin_cpus: false,
            mesh_capacity: 4,
        };
        let _ = done.send(run_shards(&config, &StopFlag::new(), shard_main));
    });
    match result.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => {}
        Ok(Err(Failure(message))) => panic!("{message}"),
        Err(_) => panic!("shard 0 is still waiting for a reply from a shard that exited"),
    }
}
