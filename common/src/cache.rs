//! Redis connections for job queues and caches.

use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use secrecy::ExposeSecret;

use crate::config::RedisConfig;

fn manager_config(config: &RedisConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.response_timeout))
        .set_connection_timeout(Some(config.connection_timeout))
        // Reconnect with a bounded backoff; the manager keeps retrying on later commands too.
        .set_number_of_retries(3)
        .set_max_delay(std::time::Duration::from_secs(2))
}

/// The client, with TCP_NODELAY: commands of concurrent tasks share one multiplexed connection, and
/// without it each write waits for the ACK of the previous one (Nagle).
fn client(config: &RedisConfig) -> redis::RedisResult<redis::Client> {
    let info = config
        .url
        .expose_secret()
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    redis::Client::open(info)
}

/// A connection manager that connects on first use and reconnects after Redis restarts.
pub fn lazy_manager(config: &RedisConfig) -> redis::RedisResult<ConnectionManager> {
    let client = client(config)?;
    ConnectionManager::new_lazy_with_config(client, manager_config(config))
}

/// A connection manager that has proved it can connect.
pub async fn connect(config: &RedisConfig) -> redis::RedisResult<ConnectionManager> {
    let client = client(config)?;
    ConnectionManager::new_with_config(client, manager_config(config)).await
}

/// Deletes every key that starts with `prefix` (a namespace's job keys `{prefix}:…` and its entitlement
/// keys `{prefix}_entitlements:…` alike), a `SCAN` page at a time, never one blocking command over the
/// keyspace. Bounded: at most 1,000,000 pages. For benchmarks and tests that own a scratch namespace.
pub async fn delete_prefix<C>(conn: &mut C, prefix: &str) -> redis::RedisResult<()>
where
    C: redis::aio::ConnectionLike + Send,
{
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    for _ in 0..1_000_000 {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(conn)
                .await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(())
}
