//! Opaque list cursors: base64url JSON of {workspace, filters, position} plus an HMAC tag, so a
//! cursor cannot be forged, edited, or replayed in another workspace or with other filters.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::store::Position;

/// Longest cursor accepted, before any decoding.
const MAX_LEN: usize = 2048;

#[derive(Serialize, Deserialize)]
struct Body {
    ws: String,
    f: String,
    k: Position,
}

fn tag(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("any key length"));
    mac.update(b"keyward-cursor.");
    mac.update(payload.as_bytes());
    mac
}

/// Encodes the position after which the next page of `workspace`'s listing with `filters` starts.
#[must_use]
pub fn encode(secret: &[u8], workspace: &str, filters: &str, position: &Position) -> String {
    let body = Body {
        ws: workspace.to_owned(),
        f: filters.to_owned(),
        k: position.clone(),
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default());
    let mac = tag(secret, &payload).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// Decodes a cursor made by [`encode`] for the same workspace and filters.
///
/// # Errors
/// `()` when it was tampered with, is malformed, or belongs to another listing.
#[allow(clippy::result_unit_err)]
pub fn decode(secret: &[u8], workspace: &str, filters: &str, cursor: &str) -> Result<Position, ()> {
    if cursor.len() > MAX_LEN {
        return Err(());
    }
    let (payload, sig) = cursor.split_once('.').ok_or(())?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| ())?;
    tag(secret, payload).verify_slice(&sig).map_err(|_| ())?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| ())?;
    let body: Body = serde_json::from_slice(&json).map_err(|_| ())?;
    if body.ws == workspace && body.f == filters {
        Ok(body.k)
    } else {
        Err(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> Position {
        Position::from([("SK".to_owned(), "KEY#key_1".to_owned())])
    }

    #[test]
    fn a_cursor_round_trips_in_its_own_listing() {
        let c = encode(b"secret", "acme", "status=active", &pos());
        assert_eq!(decode(b"secret", "acme", "status=active", &c), Ok(pos()));
    }

    #[test]
    fn a_cursor_is_refused_in_another_workspace_or_with_other_filters() {
        let c = encode(b"secret", "acme", "", &pos());
        assert!(decode(b"secret", "other", "", &c).is_err());
        assert!(decode(b"secret", "acme", "status=active", &c).is_err());
    }

    #[test]
    fn a_tampered_or_foreign_cursor_is_refused() {
        let c = encode(b"secret", "acme", "", &pos());
        assert!(decode(b"other-secret", "acme", "", &c).is_err());
        let mut chars: Vec<char> = c.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(decode(b"secret", "acme", "", &tampered).is_err());
        assert!(decode(b"secret", "acme", "", "garbage").is_err());
    }
}
