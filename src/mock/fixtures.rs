//! Users and accounts, shaped like the `MeResponse` of Armor's contract.

use super::error::FileError;
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What the mock knows: users, each with their accounts, and optionally API
/// keys. Serialized as JSON it is the fixtures file of `armor-psk mock
/// --fixtures`:
///
/// ```json
/// {
///   "users": [ { "user": {...}, "accounts": [...], "permissions": {...}, "features": [...] } ],
///   "keys": [ { "keyId": "…", "secretKey": "…", "userId": 4922 } ]
/// }
/// ```
///
/// Each element of `users` is exactly what that user's `GET /me` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    /// The users, as their `GET /me` answers.
    pub users: Vec<MeResponse>,
    /// API keys to install at start-up (optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<FixtureKey>,
}

/// An API key in a fixtures file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FixtureKey {
    /// The Key ID.
    pub key_id: String,
    /// The Secret Key.
    pub secret_key: String,
    /// The owner's `user.links.userId`.
    pub user_id: i64,
}

impl std::fmt::Debug for FixtureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureKey")
            .field("key_id", &self.key_id)
            .field("secret_key", &"[redacted]")
            .field("user_id", &self.user_id)
            .finish()
    }
}

/// The contract's `MeResponse`: a user, their accounts, permissions and
/// features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeResponse {
    /// The user's profile.
    pub user: User,
    /// The accounts the user can act on.
    pub accounts: Vec<Account>,
    /// Account id (as a string) to permission names.
    #[serde(default)]
    pub permissions: BTreeMap<String, Vec<String>>,
    /// Feature flags per account.
    #[serde(default)]
    pub features: Vec<Feature>,
}

/// The contract's `User`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Entity type, `"user"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The user's e-mail address.
    pub username: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Related identifiers.
    pub links: UserLinks,
    /// Password expiry in seconds from now.
    #[serde(default)]
    pub password_expiry: Option<String>,
}

/// The contract's `UserLinks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserLinks {
    /// The user's id.
    pub user_id: i64,
}

/// The contract's `Account`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The account id, as sent in `X-Account-Context`.
    pub id: i64,
    /// Billing currency.
    pub currency: String,
    /// Display name.
    pub name: String,
    /// `Claimed`, `Pending` or `Inactive`.
    pub status: String,
    /// Parent account id (`null` for root accounts).
    pub parent: Option<i64>,
    /// Subscribed products.
    pub products: Option<Vec<String>>,
    /// `Partner`, `Direct` or `Partner Customer`.
    pub account_type: String,
    /// Synced with external systems.
    pub is_synced: bool,
    /// On a free trial.
    pub is_free_trial: bool,
}

/// The contract's `Feature`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Feature {
    /// The account the feature applies to.
    pub account_id: i64,
    /// The feature identifier.
    pub feature: String,
    /// The product id.
    pub product_id: i64,
}

impl Fixtures {
    /// Reads fixtures from a JSON file.
    ///
    /// # Errors
    /// The file cannot be read, is not fixtures JSON, or is inconsistent
    /// (see [`Fixtures::from_json`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|error| FileError::caused(path, "cannot read", error))?;
        Self::parse(path, &text)
    }

    /// Parses fixtures JSON.
    ///
    /// # Errors
    /// Not fixtures JSON; no user; two users with one id; a user without an
    /// account; a key naming an unknown user.
    pub fn from_json(json: &str) -> Result<Self, FileError> {
        Self::parse(Path::new("(text)"), json)
    }

    fn parse(file: &Path, json: &str) -> Result<Self, FileError> {
        let fixtures: Self = serde_json::from_str(json)
            .map_err(|error| FileError::caused(file, "not fixtures JSON", error))?;
        fixtures
            .check()
            .map_err(|problem| FileError::new(file, problem))?;
        Ok(fixtures)
    }

    /// What makes the fixtures inconsistent, if anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.users.is_empty() {
            return Err("there must be at least one user".into());
        }
        let mut ids = std::collections::HashSet::new();
        for me in &self.users {
            if !ids.insert(me.user.links.user_id) {
                return Err(format!("user id {} appears twice", me.user.links.user_id));
            }
            if me.accounts.is_empty() {
                return Err(format!("user {} has no account", me.user.links.user_id));
            }
        }
        if let Some(key) = self.keys.iter().find(|key| !ids.contains(&key.user_id)) {
            return Err(format!(
                "key {} names unknown user {}",
                key.key_id, key.user_id
            ));
        }
        Ok(())
    }

    /// The user with this id.
    pub fn user(&self, user_id: i64) -> Option<&MeResponse> {
        self.users
            .iter()
            .find(|me| me.user.links.user_id == user_id)
    }
}

impl Default for Fixtures {
    /// One user (id 4922) with two accounts (1024, a partner, and 1025, its
    /// customer), with the contract's example values; a second user (id
    /// 5100) with account 2048, which the first user cannot reach.
    fn default() -> Self {
        let account = |id, name: &str, parent, account_type: &str| Account {
            id,
            currency: "USD".into(),
            name: name.into(),
            status: "Claimed".into(),
            parent,
            products: Some(vec!["AA-CORE".into()]),
            account_type: account_type.into(),
            is_synced: true,
            is_free_trial: false,
        };
        let permissions = |ids: &[i64]| {
            ids.iter()
                .map(|id| {
                    (
                        id.to_string(),
                        vec!["Account Read".to_owned(), "API Keys Self Manage".to_owned()],
                    )
                })
                .collect()
        };
        let feature = |account_id| Feature {
            account_id,
            feature: "AA-CORE.LOG-MANAGEMENT".into(),
            product_id: 1,
        };
        let user = |user_id, username: &str, first: &str, last: &str| User {
            kind: "user".into(),
            username: username.into(),
            first_name: first.into(),
            last_name: last.into(),
            links: UserLinks { user_id },
            password_expiry: Some("2609961".into()),
        };
        Self {
            users: vec![
                MeResponse {
                    user: user(4922, "john.doe@armor.com", "John", "Doe"),
                    accounts: vec![
                        account(1024, "Armor Internal Test_AA", Some(1), "Partner"),
                        account(
                            1025,
                            "Armor Internal Customer",
                            Some(1024),
                            "Partner Customer",
                        ),
                    ],
                    permissions: permissions(&[1024, 1025]),
                    features: vec![feature(1024), feature(1025)],
                },
                MeResponse {
                    user: user(5100, "jane.roe@example.com", "Jane", "Roe"),
                    accounts: vec![account(2048, "Another Company", None, "Direct")],
                    permissions: permissions(&[2048]),
                    features: vec![feature(2048)],
                },
            ],
            keys: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fixtures_round_trip_through_json() {
        let fixtures = Fixtures::default();
        let json = serde_json::to_string_pretty(&fixtures).unwrap();
        assert!(json.contains("\"firstName\": \"John\""));
        assert!(json.contains("\"accountType\": \"Partner Customer\""));
        assert_eq!(Fixtures::from_json(&json).unwrap(), fixtures);
    }

    #[test]
    fn inconsistent_fixtures_are_refused() {
        assert!(Fixtures::from_json(r#"{"users": []}"#).is_err());
        let mut two = Fixtures::default();
        two.users[1].user.links.user_id = 4922;
        assert!(two.check().is_err());
        let mut key = Fixtures::default();
        key.keys.push(FixtureKey {
            key_id: "k".into(),
            secret_key: "s".into(),
            user_id: 1,
        });
        assert!(key.check().is_err());
    }
}
