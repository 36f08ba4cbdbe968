//! KIP-848 `subscribed_topic_regex`: Kafka matches whole topic names with RE2J;
//! the `regex` crate speaks the same RE2 syntax with linear-time matching. The
//! pattern comes from the network, so its length and compiled size are capped.

/// Longest pattern accepted.
pub const PATTERN_BYTES_MAX: usize = 4096;
/// Bound on the compiled program (the crate's own guard against blow-up).
const COMPILED_BYTES_MAX: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Regex(regex::Regex);

impl Regex {
    /// Compiles `pattern` to match whole names; None if invalid or too large.
    pub fn new(pattern: &str) -> Option<Regex> {
        if pattern.len() > PATTERN_BYTES_MAX {
            return None;
        }
        regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(COMPILED_BYTES_MAX)
            .dfa_size_limit(COMPILED_BYTES_MAX)
            .build()
            .ok()
            .map(Regex)
    }

    pub fn is_match(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).is_some_and(|r| r.is_match(t))
    }

    #[test]
    fn whole_name_matches() {
        assert!(m("foo.*", "foo-bar"));
        assert!(m("^foo.*$", "foo"));
        assert!(!m("foo.*", "xfoo"));
        assert!(m("(^rx-.*)", "rx-a"));
        assert!(m("(^rx-.*)|(^other$)", "other"));
        assert!(!m("(^rx-.*)|(^other$)", "others"));
        assert!(m("t[0-9]+|other", "t12"));
        assert!(!m("t[0-9]+", "t"));
        assert!(m("a\\.b", "a.b"));
        assert!(!m("a\\.b", "axb"));
        assert!(m("(?:ab){2,3}", "ababab"));
        assert!(!m("(?:ab){2,3}", "ab"));
        assert!(m("x\\d{2}", "x42"));
        assert!(m(&"a*".repeat(200), &"a".repeat(249)));
        for bad in ["(a", "a)", "*a", "[a", "a{3,1}", "\\q", "a{99999}{99999}"] {
            assert!(Regex::new(bad).is_none(), "{bad}");
        }
        assert!(
            Regex::new(&"a".repeat(5000)).is_none(),
            "over the length cap"
        );
    }
}
