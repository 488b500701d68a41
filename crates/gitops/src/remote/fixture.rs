//! What the remote modules' tests share: a token and an SSH key whose
//! secrets (`ghp_secret`, `secret-key-material`, `hunter2`) the tests look
//! for in errors and `Debug` output, and `known_hosts` lines that pin
//! `git.example.com` and `[127.0.0.1]:2222`.

use super::RepoCredentials;

pub(super) const KNOWN: &str = "[127.0.0.1]:2222,git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETYjLvEN+D0Mgky27E7mimF+7dEYWY/qLV1sMzt0Sa6";
pub(super) const KEY: &str =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n-----END OPENSSH PRIVATE KEY-----\n";

pub(super) fn token() -> RepoCredentials {
    RepoCredentials::Token {
        username: None,
        token: "ghp_secret".to_owned(),
    }
}

pub(super) fn ssh_key() -> RepoCredentials {
    RepoCredentials::SshKey {
        private_key: KEY.to_owned(),
        passphrase: Some("hunter2".to_owned()),
        known_hosts: KNOWN.to_owned(),
    }
}
