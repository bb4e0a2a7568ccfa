//! The random codes of a class: the join code, learners' rejoin codes, ids, cookies and secrets.
//!
//! Codes a person types use 32 letters and digits that cannot be mistaken for each other (no
//! `0`/`O`, `1`/`I`), read without regard to case, spaces or dashes.

/// The letters of a typed code: five bits each.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// `count` random letters of [`ALPHABET`] (up to 24: a v4 UUID's 122 random bits).
fn letters(count: usize) -> String {
    let bits = u128::from_be_bytes(uuid::Uuid::new_v4().into_bytes());
    // The version and variant bits sit at bits 76..80 and 62..64; take the low 60 and the top 48.
    let random = (bits & ((1 << 60) - 1)) | ((bits >> 80) << 60);
    (0..count)
        .map(|i| char::from(ALPHABET[((random >> (5 * i)) & 31) as usize]))
        .collect()
}

/// The class's code, in the join link: six letters (a billion codes; joins are rate-limited).
pub fn class_code() -> String {
    letters(6)
}

/// A learner's rejoin code: ten letters, shown as two groups of five.
pub fn rejoin_code() -> String {
    let code = letters(10);
    format!("{}-{}", &code[..5], &code[5..])
}

/// A code as typed, in the form it is kept: upper case, grouped as [`rejoin_code`] makes them.
pub fn normalise(typed: &str) -> String {
    let code: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.len() == 10 {
        format!("{}-{}", &code[..5], &code[5..])
    } else {
        code
    }
}

/// A learner's namespace: `l` and twelve hex digits, safe in a path and a process owner.
pub fn learner_id() -> String {
    format!("l{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A cookie: 244 random bits.
pub fn cookie() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A password for a learner's own broker: 122 random bits.
pub fn secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::{ALPHABET, class_code, normalise, rejoin_code};

    #[test]
    fn codes_use_only_letters_that_cannot_be_confused() {
        let code = class_code();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        let rejoin = rejoin_code();
        assert_eq!(rejoin.len(), 11);
        assert_eq!(&rejoin[5..6], "-");
        assert_eq!(normalise(&rejoin.to_lowercase().replace('-', " ")), rejoin);
        assert_eq!(normalise(" abc-def "), "ABCDEF");
        // Codes are random: a thousand class codes are not all one.
        let codes: std::collections::HashSet<String> = (0..1000).map(|_| class_code()).collect();
        assert!(codes.len() > 990, "{}", codes.len());
    }
}
