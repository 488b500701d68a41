//! The cloud a cluster runs on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The cloud a cluster runs on; it picks the cloud overlay and cloud profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Azure Kubernetes Service.
    Aks,
    /// Google Kubernetes Engine.
    Gke,
    /// Amazon Elastic Kubernetes Service.
    Eks,
    /// Any other conformant cluster.
    Other,
}

impl Cloud {
    /// Every cloud, in a stable order.
    pub const ALL: [Cloud; 4] = [Cloud::Aks, Cloud::Gke, Cloud::Eks, Cloud::Other];

    /// The lowercase name used in the API, the database and directory names.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Aks => "aks",
            Cloud::Gke => "gke",
            Cloud::Eks => "eks",
            Cloud::Other => "other",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cloud name that is not one of `aks`, `gke`, `eks`, `other`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cloud `{0}` (expected aks, gke, eks or other)")]
pub struct UnknownCloud(pub String);

impl FromStr for Cloud {
    type Err = UnknownCloud;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cloud::ALL
            .into_iter()
            .find(|cloud| cloud.as_str() == s)
            .ok_or_else(|| UnknownCloud(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for cloud in Cloud::ALL {
            assert_eq!(cloud.as_str().parse::<Cloud>(), Ok(cloud));
        }
        assert_eq!("azure".parse::<Cloud>(), Err(UnknownCloud("azure".into())));
    }
}
