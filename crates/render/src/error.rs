//! The crate's one error type.

use std::path::PathBuf;

use crate::yaml::YamlError;

/// Everything that can stop a render. Each variant names the file involved
/// and, where there is one, the kustomization field or the resource.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not valid YAML (or holds a value JSON cannot represent).
    #[error("{path}: invalid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// Where and what.
        #[source]
        source: YamlError,
    },

    /// A file is larger than the configured limit.
    #[error("{path}: file is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },

    /// A directory used as a kustomization has no kustomization file.
    #[error(
        "{dir}: no kustomization file (kustomization.yaml, kustomization.yml or Kustomization)"
    )]
    MissingKustomization {
        /// The directory.
        dir: PathBuf,
    },

    /// A directory holds more than one kustomization file.
    #[error("{dir}: found multiple kustomization files: {}", names.join(", "))]
    MultipleKustomizations {
        /// The directory.
        dir: PathBuf,
        /// The file names found.
        names: Vec<String>,
    },

    /// A kustomization file is invalid: an unknown field, a value of the
    /// wrong type or a value kustomize refuses.
    #[error("{file}: invalid kustomization: field {field}: {message}")]
    InvalidKustomization {
        /// The kustomization file.
        file: PathBuf,
        /// The offending field (dotted path).
        field: String,
        /// What is wrong with it.
        message: String,
    },

    /// A kustomization uses a feature this renderer does not implement.
    #[error("{file}: field {field} is not supported by pilothouse render: {detail}")]
    Unsupported {
        /// The kustomization file.
        file: PathBuf,
        /// The field.
        field: String,
        /// Why or what exactly.
        detail: String,
    },

    /// A remote resource (URL or git repository) was referenced.
    #[error(
        "{file}: field {field}: remote resource {target:?} is not supported (only local files and directories)"
    )]
    RemoteNotSupported {
        /// The kustomization file.
        file: PathBuf,
        /// The field (`resources`, `components` …).
        field: String,
        /// The URL or git reference.
        target: String,
    },

    /// A referenced file or directory does not exist.
    #[error("{file}: field {field}: {target} does not exist")]
    NotFound {
        /// The kustomization file that references it.
        file: PathBuf,
        /// The field holding the reference.
        field: String,
        /// The missing path.
        target: PathBuf,
    },

    /// A referenced path lies outside the kustomization root (after
    /// resolving symbolic links), which kustomize refuses.
    #[error(
        "{file}: field {field}: {entry} resolves to {target}, which is outside the kustomization root {root} (load restriction)"
    )]
    OutsideRoot {
        /// The kustomization file that references it.
        file: PathBuf,
        /// The field holding the reference.
        field: String,
        /// The reference as written.
        entry: String,
        /// The path as resolved.
        target: PathBuf,
        /// The root it must stay in.
        root: PathBuf,
    },

    /// Kustomizations include each other in a cycle.
    #[error("cycle between kustomizations: {}", chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The directories forming the cycle, the first repeated at the end.
        chain: Vec<PathBuf>,
    },

    /// A resource document is not a valid Kubernetes object.
    #[error("{file}: invalid resource: {message}")]
    InvalidResource {
        /// The file holding it.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// Two resources end up with the same group, version, kind, namespace and
    /// name.
    #[error("{file}: {message}")]
    Conflict {
        /// The kustomization file where the conflict arose.
        file: PathBuf,
        /// The resource id and what collided.
        message: String,
    },

    /// A transformation (patch, replacement, generator, name reference …)
    /// failed.
    #[error("{file}: field {field}: {message}")]
    Transform {
        /// The kustomization file that configures the transformation.
        file: PathBuf,
        /// The field (`patches[0]`, `replacements[1].targets[0]` …).
        field: String,
        /// What went wrong, naming the resource.
        message: String,
    },

    /// The cloud profiles file is invalid.
    #[error("{file}: invalid cloud profiles: {message}")]
    InvalidProfiles {
        /// The profiles file.
        file: PathBuf,
        /// What is wrong (naming the field).
        message: String,
    },
}
