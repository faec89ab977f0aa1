//! The connection to one Redis or a Redis Cluster, and the per-node
//! connections the watcher reads each node's memory and identity through.

use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};

/// One Redis or a cluster: both multiplexed, cloned per command.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    pub(super) async fn pipeline(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<Vec<redis::Value>, redis::RedisError> {
        match self {
            Self::Single(connection) => pipe.query_async(&mut connection.clone()).await,
            Self::Cluster(connection) => pipe.query_async(&mut connection.clone()).await,
        }
    }

    /// A configuration value of every (primary) node.
    pub(super) async fn config_get(&self, name: &str) -> Result<Vec<String>, redis::RedisError> {
        let mut command = redis::cmd("CONFIG");
        command.arg("GET").arg(name);
        let values = match self {
            Self::Single(connection) => {
                let value: HashMap<String, String> =
                    command.query_async(&mut connection.clone()).await?;
                vec![value]
            }
            Self::Cluster(connection) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let value = connection.clone().route_command(command, routing).await?;
                let nodes: HashMap<String, HashMap<String, String>> =
                    redis::from_redis_value(value)?;
                nodes.into_values().collect()
            }
        };
        Ok(values
            .into_iter()
            .filter_map(|mut value| value.remove(name))
            .collect())
    }

    /// `INFO section` of every (primary) node, by node address.
    async fn info(
        &self,
        section: &str,
    ) -> Result<Vec<(String, redis::InfoDict)>, redis::RedisError> {
        let mut command = redis::cmd("INFO");
        command.arg(section);
        Ok(match self {
            Self::Single(connection) => vec![(
                String::new(),
                command.query_async(&mut connection.clone()).await?,
            )],
            Self::Cluster(connection) => {
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let value = connection.clone().route_command(command, routing).await?;
                let nodes: HashMap<String, redis::InfoDict> = redis::from_redis_value(value)?;
                nodes.into_iter().collect()
            }
        })
    }

    /// One connection of its own to each node whose `run_id` the watcher
    /// reads: the Redis itself, or each primary of a cluster, reached
    /// with `url`'s credentials (a cluster connection reaches a restarted
    /// node again only when a command needs it; these reconnect by
    /// themselves). A primary that cannot be reached now is left out,
    /// with a log line.
    pub(super) async fn watched_nodes(&self, url: &str) -> Nodes {
        let cluster = match self {
            Self::Single(connection) => return Nodes(vec![(String::new(), connection.clone())]),
            Self::Cluster(_) => self,
        };
        let Ok(info) = redis::IntoConnectionInfo::into_connection_info(url) else {
            return Nodes(Vec::new());
        };
        let addresses = cluster.info("server").await.unwrap_or_default();
        let mut nodes = Vec::new();
        for (address, _) in addresses {
            let Some((host, port)) = address.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse() else { continue };
            let addr = match info.addr() {
                redis::ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => redis::ConnectionAddr::TcpTls {
                    host: host.to_owned(),
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
            };
            let node = redis::Client::open(info.clone().set_addr(addr));
            let manager = match node {
                Ok(client) => ConnectionManager::new_with_config(client, watch_config()).await,
                Err(error) => Err(error),
            };
            match manager {
                Ok(manager) => nodes.push((address, manager)),
                Err(error) => tracing::warn!(
                    %error,
                    node = address.as_str(),
                    "ARMOR-PSK Redis replay store: cannot watch this cluster node's restarts"
                ),
            }
        }
        Nodes(nodes)
    }

    /// `used_memory` and `maxmemory` of the fullest node (by share).
    pub(super) async fn memory(&self) -> Result<(u64, u64), redis::RedisError> {
        let infos = self.info("memory").await?;
        let infos = infos.into_iter().map(|(_, info)| info);
        let mut fullest = (0, 0);
        for info in infos {
            let used: u64 = info.get("used_memory").unwrap_or(0);
            let max: u64 = info.get("maxmemory").unwrap_or(0);
            let share = |(used, max): (u64, u64)| {
                if max == 0 {
                    0.0
                } else {
                    used as f64 / max as f64
                }
            };
            if fullest == (0, 0) || share((used, max)) > share(fullest) {
                fullest = (used, max);
            }
        }
        Ok(fullest)
    }
}

/// The nodes the watcher reads `run_id` from, by address.
pub(super) struct Nodes(Vec<(String, ConnectionManager)>);

impl Nodes {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `run_id` of each node that answers, by address (a node down is
    /// left out: it is not a restart yet).
    pub(super) async fn run_ids(&self) -> HashMap<String, String> {
        let mut ids = HashMap::new();
        for (address, connection) in &self.0 {
            let info: Result<redis::InfoDict, _> = redis::cmd("INFO")
                .arg("server")
                .query_async(&mut connection.clone())
                .await;
            if let Some(id) = info.ok().and_then(|info| info.get::<String>("run_id")) {
                ids.insert(address.clone(), id);
            }
        }
        ids
    }
}

/// Connection settings of the watcher's own connections.
fn watch_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(1)))
        .set_response_timeout(Some(std::time::Duration::from_secs(1)))
        .set_number_of_retries(1)
        .set_max_delay(std::time::Duration::from_millis(500))
}
