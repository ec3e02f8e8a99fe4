//! The shard-0 HTTP front desk: hyper 1.x on glommio.
//!
//! - [`io`]: hyper's I/O and timer traits over glommio.
//! - [`server`]: the accept loop with its connection bound, body limit and header timeout, and
//!   the per-request pipeline (read body → authenticate → route → map errors).
//! - [`router`]: a plain `match` on method and path segments.
//! - [`auth`]: which project a credential belongs to.
//! - [`error`]: every REST error and its single mapping to status and IoTDA code.

pub mod auth;
pub mod error;
pub mod io;
pub mod router;
pub mod server;
