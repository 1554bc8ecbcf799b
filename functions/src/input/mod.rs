//! Request bodies: the typed structs the OpenAPI document describes, and the checks that turn them
//! into validated values, collecting one [`FieldError`] per bad field.
//!
//! A body deserializes into its request struct with every field a [`Field`]: absent, `null`, a
//! value of the documented type, or something else (kept as an error). Unknown fields are refused
//! (`deny_unknown_fields`, which the document shows as `additionalProperties: false`), all of them
//! reported, not only the first.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use keyward_common::FieldError;

pub mod checks;
pub mod credits;
pub mod import;
pub mod key;
pub mod query;
pub mod role;
pub mod usage;
pub mod webhook;

pub use checks::{ScopePolicy, valid_scope, valid_workspace};

/// A body field as sent: three states for PATCH (absent keeps, `null` clears, a value sets),
/// plus a value of the wrong type, kept so every bad field is reported at once.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// Not in the body.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value of the documented type.
    Value(T),
    /// Something else; serde's message.
    Invalid(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Self::Null,
            v => match serde_json::from_value(v) {
                Ok(x) => Self::Value(x),
                Err(e) => Self::Invalid(e.to_string()),
            },
        })
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<T> Field<T> {
    /// Whether the body left it out.
    #[must_use]
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

/// Deserializes a JSON object body into `T` (a struct of [`Field`]s with `deny_unknown_fields`),
/// reporting every unknown field rather than the first: the errors come back with the value, so
/// validation can add its own after them.
///
/// # Errors
/// When `T` cannot be built even without the unknown fields (a bug in `T`), reported on `body`.
pub fn from_object<T: DeserializeOwned>(
    mut body: Map<String, Value>,
) -> Result<(T, Errors), Vec<FieldError>> {
    let mut errors = Errors::default();
    loop {
        match serde_json::from_value::<T>(Value::Object(body.clone())) {
            Ok(t) => return Ok((t, errors)),
            Err(e) => {
                let msg = e.to_string();
                let unknown = msg
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(name, _)| name.to_owned());
                match unknown {
                    Some(name) if body.remove(&name).is_some() => {
                        errors.add(&name, "is not a known field");
                    }
                    _ => {
                        errors.add("body", "does not have the documented shape");
                        return Err(errors.0);
                    }
                }
            }
        }
    }
}

/// Collects field errors while a body is validated.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    /// Records that `field` is invalid.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Whether `field` already has an error.
    #[must_use]
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }

    /// The value of a field that must have type `T` (`expected` says which, for people):
    /// `Some(Some(v))` for a value, `Some(None)` for `null`, `None` when absent or invalid.
    pub fn take<T>(&mut self, field: &str, f: Field<T>, expected: &str) -> Option<Option<T>> {
        match f {
            Field::Absent => None,
            Field::Null => Some(None),
            Field::Value(v) => Some(Some(v)),
            Field::Invalid(msg) => {
                // serde's message for a nested unknown field is useful; a type mismatch is not.
                if msg.starts_with("unknown field") {
                    self.add(field, msg);
                } else {
                    self.add(field, format!("must be {expected}"));
                }
                None
            }
        }
    }

    /// `value` when no error was recorded.
    ///
    /// # Errors
    /// Every recorded error.
    pub fn done<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}
