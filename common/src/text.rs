//! Bounding text we store: column limits (`VARCHAR(255)`), error messages and summaries. One home for
//! it, counted in characters so a cut never splits one.

/// The first `max` characters of `text` (for a column limit: nothing is added).
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// Like [`clip`], but a cut text ends in `…` (within `max`), so a reader sees it was cut.
pub fn clip_marked(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let mut cut = clip(text, max.saturating_sub(1));
            cut.push('…');
            cut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_counts_characters_and_never_splits_one() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("żółw", 2), "żó");
        assert_eq!(clip("", 0), "");
        assert_eq!(clip("a", 0), "");
    }

    #[test]
    fn a_marked_clip_says_it_was_cut_and_stays_within_the_limit() {
        assert_eq!(clip_marked("abc", 3), "abc");
        assert_eq!(clip_marked("abcdef", 4), "abc…");
        assert_eq!(clip_marked("żółwie", 4).chars().count(), 4);
        assert_eq!(clip_marked("ab", 0), "…");
    }
}
