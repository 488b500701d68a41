//! Why an incident exists, and how bad it is.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::IncidentsError;

/// Why a container, pod or node is in trouble. Names are the Kubernetes
/// spelling where Kubernetes has one (the `reason` of a container state,
/// pod or condition), and the same CamelCase style where it has none
/// (`Restarted`, `PodFailed`, `NodeNotReady`, `NodeUnknown`). The serde form
/// is [`Reason::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Reason {
    /// A container keeps crashing and the kubelet backs off restarting it.
    CrashLoopBackOff,
    /// The image cannot be pulled; the kubelet backs off.
    ImagePullBackOff,
    /// Pulling the image failed.
    ErrImagePull,
    /// The container's configuration refers to something missing (a
    /// Secret, a ConfigMap key …).
    CreateContainerConfigError,
    /// The runtime could not create the container.
    CreateContainerError,
    /// The image reference is malformed.
    InvalidImageName,
    /// The runtime could not start the container.
    RunContainerError,
    /// The container was killed for exceeding its memory limit (`OOMKilled`).
    OomKilled,
    /// The container terminated with a non-zero exit code (Kubernetes'
    /// reasons `Error`, `ContainerCannotRun`, `StartError` … all map here;
    /// the original text is in the finding's message).
    Error,
    /// The restart count grew and the container status does not tell why.
    Restarted,
    /// The pod has been Pending and unschedulable for longer than the
    /// threshold.
    Unschedulable,
    /// The kubelet evicted the pod (phase Failed, reason `Evicted`).
    Evicted,
    /// The pod failed for another reason than its containers' exit codes
    /// (a deadline, a node shutdown …).
    PodFailed,
    /// A node's `Ready` condition is `False`.
    NodeNotReady,
    /// A node's `Ready` condition is `Unknown` (the node stopped reporting).
    NodeUnknown,
    /// A node's `MemoryPressure` condition is `True`.
    MemoryPressure,
    /// A node's `DiskPressure` condition is `True`.
    DiskPressure,
    /// A node's `PIDPressure` condition is `True`.
    PidPressure,
}

/// How bad an incident is: `Warning < Critical` (the shared type).
pub use pilothouse_types::Severity;

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 18] = [
        Reason::CrashLoopBackOff,
        Reason::ImagePullBackOff,
        Reason::ErrImagePull,
        Reason::CreateContainerConfigError,
        Reason::CreateContainerError,
        Reason::InvalidImageName,
        Reason::RunContainerError,
        Reason::OomKilled,
        Reason::Error,
        Reason::Restarted,
        Reason::Unschedulable,
        Reason::Evicted,
        Reason::PodFailed,
        Reason::NodeNotReady,
        Reason::NodeUnknown,
        Reason::MemoryPressure,
        Reason::DiskPressure,
        Reason::PidPressure,
    ];

    /// The reasons about nodes.
    pub const NODE: [Reason; 5] = [
        Reason::NodeNotReady,
        Reason::NodeUnknown,
        Reason::MemoryPressure,
        Reason::DiskPressure,
        Reason::PidPressure,
    ];

    /// The name, in Kubernetes spelling: `CrashLoopBackOff`, `OOMKilled`,
    /// `PIDPressure` …
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CrashLoopBackOff => "CrashLoopBackOff",
            Reason::ImagePullBackOff => "ImagePullBackOff",
            Reason::ErrImagePull => "ErrImagePull",
            Reason::CreateContainerConfigError => "CreateContainerConfigError",
            Reason::CreateContainerError => "CreateContainerError",
            Reason::InvalidImageName => "InvalidImageName",
            Reason::RunContainerError => "RunContainerError",
            Reason::OomKilled => "OOMKilled",
            Reason::Error => "Error",
            Reason::Restarted => "Restarted",
            Reason::Unschedulable => "Unschedulable",
            Reason::Evicted => "Evicted",
            Reason::PodFailed => "PodFailed",
            Reason::NodeNotReady => "NodeNotReady",
            Reason::NodeUnknown => "NodeUnknown",
            Reason::MemoryPressure => "MemoryPressure",
            Reason::DiskPressure => "DiskPressure",
            Reason::PidPressure => "PIDPressure",
        }
    }

    /// [`Severity::Critical`] when the workload cannot run — every waiting
    /// reason (including `CrashLoopBackOff`), `Unschedulable` — or a node is
    /// not ready; [`Severity::Warning`] for a failure that was restarted or
    /// replaced (`OOMKilled`, `Error`, `Restarted`, `Evicted`, `PodFailed`)
    /// and node pressure.
    pub fn severity(self) -> Severity {
        match self {
            Reason::CrashLoopBackOff
            | Reason::ImagePullBackOff
            | Reason::ErrImagePull
            | Reason::CreateContainerConfigError
            | Reason::CreateContainerError
            | Reason::InvalidImageName
            | Reason::RunContainerError
            | Reason::Unschedulable
            | Reason::NodeNotReady
            | Reason::NodeUnknown => Severity::Critical,
            Reason::OomKilled
            | Reason::Error
            | Reason::Restarted
            | Reason::Evicted
            | Reason::PodFailed
            | Reason::MemoryPressure
            | Reason::DiskPressure
            | Reason::PidPressure => Severity::Warning,
        }
    }

    /// The reason of a container's `waiting` state, if it is one this crate
    /// reports.
    pub(crate) fn of_waiting(reason: &str) -> Option<Reason> {
        match reason {
            "CrashLoopBackOff" => Some(Reason::CrashLoopBackOff),
            "ImagePullBackOff" => Some(Reason::ImagePullBackOff),
            "ErrImagePull" => Some(Reason::ErrImagePull),
            "CreateContainerConfigError" => Some(Reason::CreateContainerConfigError),
            "CreateContainerError" => Some(Reason::CreateContainerError),
            "InvalidImageName" => Some(Reason::InvalidImageName),
            "RunContainerError" => Some(Reason::RunContainerError),
            _ => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = IncidentsError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == value)
            .ok_or_else(|| IncidentsError::UnknownReason {
                value: value.to_owned(),
            })
    }
}

impl From<Reason> for &'static str {
    fn from(reason: Reason) -> Self {
        reason.as_str()
    }
}

impl TryFrom<String> for Reason {
    type Error = IncidentsError;

    fn try_from(value: String) -> Result<Self, IncidentsError> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: Result<(Reason, Severity), ()>) {
        let parsed = name.parse::<Reason>();
        assert_eq!(
            parsed.as_ref().map(|r| (*r, r.severity())).map_err(|_| ()),
            expected,
            "{name}"
        );
        match parsed {
            Ok(reason) => {
                assert_eq!(reason.to_string(), name);
                let json = serde_json::to_value(reason).expect("serialize");
                assert_eq!(json, serde_json::json!(name));
                assert_eq!(serde_json::from_value::<Reason>(json).ok(), Some(reason));
            }
            Err(error) => {
                assert_eq!(
                    error,
                    IncidentsError::UnknownReason {
                        value: name.to_owned()
                    }
                );
                assert!(serde_json::from_value::<Reason>(serde_json::json!(name)).is_err());
            }
        }
    }

    #[test]
    fn names_and_severities() {
        use Severity::*;
        check("CrashLoopBackOff", Ok((Reason::CrashLoopBackOff, Critical)));
        check("ImagePullBackOff", Ok((Reason::ImagePullBackOff, Critical)));
        check("OOMKilled", Ok((Reason::OomKilled, Warning)));
        check("Error", Ok((Reason::Error, Warning)));
        check("Unschedulable", Ok((Reason::Unschedulable, Critical)));
        check("Evicted", Ok((Reason::Evicted, Warning)));
        check("NodeNotReady", Ok((Reason::NodeNotReady, Critical)));
        check("PIDPressure", Ok((Reason::PidPressure, Warning)));
        check("OomKilled", Err(()));
        check("crash_loop_back_off", Err(()));
        check("", Err(()));
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>().ok(), Some(reason));
        }
        assert_eq!(Severity::Critical.as_str(), "critical");
        assert!(Severity::Warning < Severity::Critical);
    }
}
