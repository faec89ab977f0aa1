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

    /// Each node's `run_id`, by node address.
    pub(super) async fn run_ids(&self) -> Result<HashMap<String, String>, redis::RedisError> {
        Ok(self
            .info("server")
            .await?
            .into_iter()
            .filter_map(|(node, info)| info.get("run_id").map(|id| (node, id)))
            .collect())
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
