//! The metadata source: what the Kubernetes API says about this node's pods and the
//! addresses they talk to, kept in a bounded [`Store`] that the agent queries by container
//! id, pod UID and peer IP.

mod config;
mod convert;
mod source;
mod store;

pub use config::{Enabled, KubernetesConfig, MetaSettings};
pub use convert::{Watched, SERVICE_NAME_LABEL};
pub use source::{client, KindHealth, Meta, MetaError, MetaSource};
pub use store::{Key, KindStats, ObjKind, Object, Peer, Store};
