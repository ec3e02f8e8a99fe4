//! hyper's I/O and timer traits over glommio — moved to [`shards::hyper_io`] so the push sender
//! (a hyper client on every shard) and this front desk share one adapter.

pub use shards::hyper_io::*;
