//! Session ids: they link a session's audit events, its recording and the tokens kubectl
//! fetched in it, and name the recording's file, so nothing but lowercase hex gets through.
//! The audit trail and the protocol both depend on this module, and it on neither.

use std::fmt;

/// 8 to 64 lowercase hex digits (checked wherever one is made or read).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A new id: 24 lowercase hex digits from the kernel's random source. Fails rather
    /// than hand out a predictable id.
    pub(crate) fn new() -> Result<SessionId, String> {
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).map_err(|e| format!("no random session id: {e}"))?;
        Ok(SessionId(
            bytes.iter().map(|b| format!("{b:02x}")).collect(),
        ))
    }

    /// `text` if it is a session id.
    pub fn parse(text: &str) -> Option<SessionId> {
        valid(text).then(|| SessionId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SessionId, D::Error> {
        let text = String::deserialize(d)?;
        SessionId::parse(&text)
            .ok_or_else(|| serde::de::Error::custom("a session id is 8 to 64 lowercase hex digits"))
    }
}

/// Whether `id` is a session id: 8 to 64 lowercase hex digits.
fn valid(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_differ() {
        let (a, b) = (SessionId::new().unwrap(), SessionId::new().unwrap());
        assert_eq!(a.as_str().len(), 24);
        assert!(SessionId::parse(a.as_str()).is_some());
        assert_ne!(a, b);
    }

    #[test]
    fn anything_but_lowercase_hex_is_refused() {
        for bad in ["", "../../etc", "ABCDEF0123", "0123456", &"a".repeat(65)] {
            assert!(SessionId::parse(bad).is_none(), "{bad}");
        }
        let err = serde_json::from_str::<SessionId>("\"../x\"").unwrap_err();
        assert!(err.to_string().contains("lowercase hex"), "{err}");
    }
}
