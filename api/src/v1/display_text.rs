//! Names users give things (API keys, invited members) are shown back to them and to operators on the
//! dashboard. Besides control characters, Unicode's bidirectional controls are refused: an override
//! (U+202E) makes `key-for-ci<RLO>gnp.exe` display as something it is not ("Trojan Source",
//! CVE-2021-42574). Joiners stay allowed: emoji sequences need U+200D.

/// Whether `c` may not appear in a displayed name.
pub fn refused(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Embeddings and overrides, isolates, and the implicit marks (LRM, RLM, ALM).
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

#[cfg(test)]
mod tests {
    use super::refused;

    #[test]
    fn bidi_controls_and_control_characters_are_refused_emoji_are_not() {
        for c in [
            '\u{202E}', '\u{2066}', '\u{200F}', '\u{061C}', '\n', '\0', '\u{7F}',
        ] {
            assert!(refused(c), "{:?}", c);
        }
        assert!(!"ci key 🔑 Zoë 👩‍💻 مفتاح".chars().any(refused));
    }
}
