//! locksmith's reboot semaphore (SPEC §9): `{"semaphore": <free slots>, "max": <N>, "holders":
//! [<instance id>…]}`, `holders` possibly `null`. Pure: the backends read it, change it with one
//! of these operations and write it back by compare-and-swap.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The lock of one reboot group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Semaphore {
    /// Free slots: `max` minus the holders. Derived; kept because locksmith writes it.
    pub semaphore: i64,
    pub max: i64,
    /// Instance ids; locksmith writes `null` for none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub holders: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// Why a document is not a usable semaphore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadSemaphore {
    #[error("not a reboot semaphore document: {0}")]
    Json(String),
    #[error("max is {0}; it must be at least 0")]
    NegativeMax(i64),
    #[error("holder {0:?} is not an EC2 instance id")]
    BadHolder(String),
    #[error("holder {0} is listed twice")]
    DuplicateHolder(String),
}

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The document changed: write it back.
    Changed,
    /// Nothing to change (a take by a holder, a release by a non-holder): nothing to write.
    Unchanged,
    /// A take refused: every slot is held, by these.
    Full { holders: Vec<String> },
}

impl Semaphore {
    /// A group's lock before anyone used it: `max` slots, all free.
    pub fn new(max: i64) -> Self {
        Semaphore {
            semaphore: max,
            max,
            holders: Vec::new(),
        }
    }

    /// Parses a stored document strictly, and recomputes the free slots from `max` and the
    /// holders (a document whose count drifted is corrected at its next write).
    pub fn parse(bytes: &[u8]) -> Result<Self, BadSemaphore> {
        let mut s: Semaphore =
            serde_json::from_slice(bytes).map_err(|e| BadSemaphore::Json(e.to_string()))?;
        if s.max < 0 {
            return Err(BadSemaphore::NegativeMax(s.max));
        }
        for (i, h) in s.holders.iter().enumerate() {
            if !is_instance_id(h) {
                return Err(BadSemaphore::BadHolder(h.clone()));
            }
            if s.holders[..i].contains(h) {
                return Err(BadSemaphore::DuplicateHolder(h.clone()));
            }
        }
        s.semaphore = s.free();
        Ok(s)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a semaphore serialises")
    }

    /// Free slots (negative when `max` was lowered below the holders).
    pub fn free(&self) -> i64 {
        self.max - self.holders.len() as i64
    }

    /// Takes a slot for `id`; taking again while holding one is a no-op (re-entrant).
    pub fn take(&mut self, id: &str) -> Outcome {
        if self.holders.iter().any(|h| h == id) {
            return Outcome::Unchanged;
        }
        if self.free() <= 0 {
            return Outcome::Full {
                holders: self.holders.clone(),
            };
        }
        self.holders.push(id.to_string());
        self.semaphore = self.free();
        Outcome::Changed
    }

    /// Gives back `id`'s slot; a no-op when it holds none.
    pub fn release(&mut self, id: &str) -> Outcome {
        let before = self.holders.len();
        self.holders.retain(|h| h != id);
        self.semaphore = self.free();
        if self.holders.len() == before {
            Outcome::Unchanged
        } else {
            Outcome::Changed
        }
    }

    /// Sets the number of slots; holders keep theirs (free slots may go negative until they
    /// release).
    pub fn set_max(&mut self, max: i64) -> Outcome {
        if self.max == max {
            return Outcome::Unchanged;
        }
        self.max = max;
        self.semaphore = self.free();
        Outcome::Changed
    }
}

impl fmt::Display for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let holders = if self.holders.is_empty() {
            "none".to_string()
        } else {
            self.holders.join(", ")
        };
        write!(
            f,
            "max {}, {} free, held by {holders}",
            self.max,
            self.free().max(0)
        )
    }
}

/// `i-` and 8 or 17 lowercase hex digits, as EC2 names instances.
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|hex| {
        matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "i-0123456789abcdef0";
    const B: &str = "i-0123456789abcdef1";

    #[test]
    fn locksmith_documents_parse_null_holders_included() {
        let s = Semaphore::parse(br#"{"semaphore":1,"max":1,"holders":null}"#).unwrap();
        assert_eq!(s, Semaphore::new(1));
        let s = Semaphore::parse(br#"{"semaphore":0,"max":1,"holders":["i-0123456789abcdef0"]}"#)
            .unwrap();
        assert_eq!(s.holders, [A]);
        // A drifted count is corrected from max and the holders.
        let s = Semaphore::parse(br#"{"semaphore":5,"max":2,"holders":[]}"#).unwrap();
        assert_eq!(s.semaphore, 2);
        for (bad, why) in [
            (&br#"{"semaphore":1,"max":1}"#[..], None),
            (br#"{"semaphore":1,"max":1,"holders":[],"x":1}"#, Some("unknown field")),
            (br#"{"semaphore":1,"max":-1,"holders":[]}"#, Some("at least 0")),
            (br#"{"semaphore":0,"max":1,"holders":["node 1"]}"#, Some("not an EC2")),
            (
                br#"{"semaphore":0,"max":2,"holders":["i-0123456789abcdef0","i-0123456789abcdef0"]}"#,
                Some("twice"),
            ),
            (b"[]", Some("not a reboot semaphore")),
        ] {
            match (Semaphore::parse(bad), why) {
                (Ok(s), None) => assert!(s.holders.is_empty(), "missing holders = none"),
                (Err(e), Some(why)) => assert!(e.to_string().contains(why), "{e}"),
                (other, _) => panic!("{}: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }

    #[test]
    fn take_release_and_set_max_keep_the_count() {
        let mut s = Semaphore::new(1);
        assert_eq!(s.take(A), Outcome::Changed);
        assert_eq!(s.take(A), Outcome::Unchanged, "re-entrant");
        assert_eq!(
            s.take(B),
            Outcome::Full {
                holders: vec![A.into()]
            }
        );
        assert_eq!(s.semaphore, 0);
        assert_eq!(s.set_max(2), Outcome::Changed);
        assert_eq!(s.take(B), Outcome::Changed);
        assert_eq!((s.semaphore, s.holders.len()), (0, 2));
        assert_eq!(s.set_max(1), Outcome::Changed);
        assert_eq!(s.free(), -1, "holders keep their slots");
        assert_eq!(s.release(A), Outcome::Changed);
        assert_eq!(s.release(A), Outcome::Unchanged);
        assert_eq!(
            s.take(A),
            Outcome::Full {
                holders: vec![B.into()]
            }
        );
        assert_eq!(s.release(B), Outcome::Changed);
        assert_eq!(s, Semaphore::new(1));
        let json = String::from_utf8(s.to_json()).unwrap();
        assert_eq!(json, r#"{"semaphore":1,"max":1,"holders":[]}"#);
    }

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("i-0123abcd"));
        assert!(is_instance_id(A));
        for bad in [
            "i-0123ABCD",
            "i-123",
            "0123456789abcdef0",
            "i-0123456789abcdef0x",
        ] {
            assert!(!is_instance_id(bad), "{bad}");
        }
    }
}
