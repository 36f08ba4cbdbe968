//! `ssl.principal.mapping.rules` (KIP-371): from a client certificate's
//! subject DN to a user name. `RULE:regex/replacement/[L|U]` entries, comma
//! separated, the first that matches wins; `DEFAULT` is the whole DN.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid ssl.principal.mapping.rules: {0}")]
pub struct RulesError(pub String);

#[derive(Clone, Debug)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Map {
        pattern: regex::Regex,
        replacement: String,
        case: Option<Case>,
    },
}

#[derive(Clone, Copy, Debug)]
enum Case {
    Lower,
    Upper,
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

impl PrincipalMapper {
    pub fn parse(rules: &str) -> Result<PrincipalMapper, RulesError> {
        todo!()
    }
    /// The user name for `dn` (RFC 2253, as `subject_dn` gives it); None when
    /// no rule matches (Kafka then fails the connection).
    pub fn map(&self, dn: &str) -> Option<String> {
        todo!()
    }
}
