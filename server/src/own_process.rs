//! What the Redis and RabbitMQ clients share: finding and placing the broker grouplab starts as
//! its own child process, and a deadline on every call to the broker.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::ClusterError;

/// The program itself if it is a path to a file, or the first file of that name on the PATH.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_owned());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A loopback port nobody listens on now.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// `call`, or "the broker at `url` did not answer" once `timeout` has passed.
pub async fn within<T>(
    timeout: Duration,
    url: &str,
    call: impl Future<Output = T>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| ClusterError::Unreachable {
            bootstrap: url.to_owned(),
        })
}
