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
        /// `\A(?:pattern)\z`: Java's `Matcher.matches()`, the whole DN.
        whole: regex::Regex,
        /// The pattern as written, for `String.replaceAll`.
        pattern: regex::Regex,
        replacement: Vec<Piece>,
        case: Option<Case>,
    },
}

/// A parsed Java replacement string (`$n`, `${name}`, `\c`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
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
    /// Empty (or only separators) means DEFAULT: an unset setting should not
    /// refuse every certificate.
    pub fn parse(rules: &str) -> Result<PrincipalMapper, RulesError> {
        let mut parsed = Vec::new();
        let mut rest = rules;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if rest.is_empty() {
                break;
            }
            let (rule, after) = parse_entry(rest)?;
            parsed.push(rule);
            rest = after;
        }
        if parsed.is_empty() {
            return Ok(PrincipalMapper::default());
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The user name for `dn` (RFC 2253, as `subject_dn` gives it); None when
    /// no rule matches (Kafka then fails the connection).
    pub fn map(&self, dn: &str) -> Option<String> {
        for rule in &self.rules {
            let (whole, pattern, replacement, case) = match rule {
                Rule::Default => return Some(dn.to_string()),
                Rule::Map {
                    whole,
                    pattern,
                    replacement,
                    case,
                } => (whole, pattern, replacement, case),
            };
            if !whole.is_match(dn) {
                continue;
            }
            let mut out = replace_all(pattern, replacement, dn);
            match case {
                Some(Case::Lower) => out = out.to_lowercase(),
                Some(Case::Upper) => out = out.to_uppercase(),
                None => {}
            }
            // The first matching rule decides; an empty name is no principal.
            return (!out.is_empty()).then_some(out);
        }
        None
    }
}

/// The entry at the start of `s` (leading whitespace trimmed) and what
/// follows its separator.
fn parse_entry(s: &str) -> Result<(Rule, &str), RulesError> {
    let bad = |entry: &str, why: &str| RulesError(format!("{why} in {:?}", entry.trim()));
    // Up to the next separator: the whole of an entry that is not a RULE.
    let up_to_comma = |s: &str| s.split([',', '\n']).next().unwrap_or(s).to_string();
    let (rule, after) = if let Some(after) = s.strip_prefix("DEFAULT") {
        (Rule::Default, after)
    } else if let Some(body) = s.strip_prefix("RULE:") {
        let first_line = s.lines().next().unwrap_or(s);
        let (raw_pattern, after) =
            split_field(body).ok_or_else(|| bad(first_line, "missing '/' after the pattern"))?;
        let (raw_replacement, after) = split_field(after)
            .ok_or_else(|| bad(first_line, "missing '/' after the replacement"))?;
        let (case, after) = match after.chars().next() {
            Some('L') => (Some(Case::Lower), &after[1..]),
            Some('U') => (Some(Case::Upper), &after[1..]),
            _ => (None, after),
        };
        let entry = &s[..s.len() - after.len()];
        let pattern_src = unescape_slashes(raw_pattern);
        let regex_error = |e: regex::Error| bad(entry, &format!("bad regex ({e})"));
        let pattern = regex::Regex::new(&pattern_src).map_err(regex_error)?;
        let whole = regex::Regex::new(&format!(r"\A(?:{pattern_src})\z")).map_err(regex_error)?;
        let replacement =
            parse_replacement(raw_replacement, &pattern).map_err(|why| bad(entry, &why))?;
        (
            Rule::Map {
                whole,
                pattern,
                replacement,
                case,
            },
            after,
        )
    } else {
        return Err(bad(
            &up_to_comma(s),
            "expected DEFAULT or RULE:pattern/replacement/[L|U]",
        ));
    };
    let rest = after.trim_start_matches([' ', '\t', '\r']);
    match rest.chars().next() {
        None => Ok((rule, rest)),
        Some(',' | '\n') => Ok((rule, &rest[1..])),
        Some(_) => {
            let entry = format!("{}{}", &s[..s.len() - after.len()], up_to_comma(after));
            Err(bad(&entry, "unexpected text after the rule"))
        }
    }
}

/// `s` up to its first unescaped `/` (escapes kept), and what follows it.
fn split_field(s: &str) -> Option<(&str, &str)> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next()?;
            }
            '/' => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

/// A rule writes a slash in its pattern as `\/`; in the regex it is just
/// `/`. Other escapes stay for the regex. Walked pairwise so `\\` followed
/// by `/` cannot be mistaken for `\/`.
fn unescape_slashes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('/') => out.push('/'),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Java's replacement syntax as `Matcher.appendReplacement` reads it, with
/// Kafka's rewrite (`escapeLiteralBackReferences`) of references to groups
/// the pattern lacks into literal text.
fn parse_replacement(raw: &str, pattern: &regex::Regex) -> Result<Vec<Piece>, String> {
    let groups = pattern.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = raw.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                let Some(&n) = chars.get(i) else {
                    return Err("replacement ends in a lone '\\'".into());
                };
                text.push(n);
                i += 1;
            }
            '$' if chars.get(i) == Some(&'{') => {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == '}')
                    .ok_or("replacement has '${' without '}'")?;
                let name: String = chars[i + 1..i + close].iter().collect();
                if !pattern.capture_names().any(|n| n == Some(name.as_str())) {
                    return Err(format!(
                        "replacement names group {name:?}, not in the pattern"
                    ));
                }
                i += close + 1;
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Named(name));
            }
            '$' => {
                let digits: String = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if digits.is_empty() {
                    return Err("replacement has '$' without a group".into());
                }
                if !kafka_keeps_reference(&digits, groups) {
                    // Kafka escapes it: the `$` and digits are plain text.
                    text.push('$');
                    continue;
                }
                // Java: the first digit is the group, then more digits while
                // the number stays a group of the pattern.
                let mut group = usize::from(digits.as_bytes()[0] - b'0');
                if group > groups {
                    return Err(format!(
                        "replacement refers to group {group}; the pattern has {groups}"
                    ));
                }
                i += 1;
                while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                    let next = group * 10 + d as usize;
                    if next > groups {
                        break;
                    }
                    group = next;
                    i += 1;
                }
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Group(group));
            }
            c => text.push(c),
        }
    }
    pieces.push(Piece::Text(text));
    pieces.retain(|p| *p != Piece::Text(String::new()));
    Ok(pieces)
}

/// False where Kafka turns `$digits` into literal text: the pattern has
/// groups, and even shortened to its leading digits (down to one) the number
/// names none of them. `$0…` is always kept.
fn kafka_keeps_reference(digits: &str, groups: usize) -> bool {
    if groups == 0 || digits.starts_with('0') {
        return true;
    }
    // Only the leading digits that could name a group matter; this also
    // keeps the number from overflowing.
    let mut n: usize = digits
        .get(..digits.len().min(18))
        .and_then(|d| d.parse().ok())
        .unwrap_or(usize::MAX);
    while n > groups && n >= 10 {
        n /= 10;
    }
    n <= groups
}

/// Java's `String.replaceAll(pattern, replacement)`.
fn replace_all(pattern: &regex::Regex, replacement: &[Piece], dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut last = 0;
    for caps in pattern.captures_iter(dn) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&dn[last..m.start()]);
        for piece in replacement {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
                Piece::Named(n) => out.push_str(caps.name(n).map_or("", |m| m.as_str())),
            }
        }
        last = m.end();
    }
    out.push_str(&dn[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testcert::{TestCa, dn};
    use crate::tls::subject_dn;
    use rcgen::DnType;

    fn map(rules: &str, dn: &str) -> Option<String> {
        PrincipalMapper::parse(rules).unwrap().map(dn)
    }

    #[test]
    fn maps_client_certificate_subjects() {
        let ca = TestCa::new("Test CA");
        let a = ca.client(dn(&[
            (DnType::OrganizationName, "Acme"),
            (DnType::OrganizationalUnitName, "ServiceUsers"),
            (DnType::CommonName, "svc-a"),
        ]));
        let b = ca.client(dn(&[
            (DnType::CommonName, "SVC-B"),
            (DnType::OrganizationName, "Acme"),
        ]));
        let dn_a = subject_dn(&a.cert_der).unwrap();
        let dn_b = subject_dn(&b.cert_der).unwrap();
        assert_eq!(dn_a, "CN=svc-a,OU=ServiceUsers,O=Acme");
        assert_eq!(dn_b, "O=Acme,CN=SVC-B");

        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^O=Acme,CN=(.*)$/$1/L,DEFAULT";
        assert_eq!(map(rules, &dn_a).as_deref(), Some("svc-a"));
        assert_eq!(map(rules, &dn_b).as_deref(), Some("svc-b"));
        assert_eq!(
            map("RULE:^O=Acme,CN=(.*)$/$1/U", &dn_b).as_deref(),
            Some("SVC-B")
        );
        assert_eq!(map("DEFAULT", &dn_a), Some(dn_a.clone()));
        assert_eq!(map("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/", &dn_b), None);
        assert_eq!(map("RULE:^CN=nobody$/x/, RULE:^O=Other.*$/y/", &dn_a), None);
    }

    #[test]
    fn empty_rules_mean_default() {
        assert_eq!(map("", "CN=a").as_deref(), Some("CN=a"));
        assert_eq!(map(" ,  , ", "CN=a").as_deref(), Some("CN=a"));
        assert_eq!(
            PrincipalMapper::default().map("CN=a").as_deref(),
            Some("CN=a")
        );
    }

    #[test]
    fn kafka_mapper_cases() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let m = PrincipalMapper::parse(&rules).unwrap();
        let get = |dn: &str| m.map(dn).unwrap();
        assert_eq!(get("CN=Duke,OU=ServiceUsers,O=Org,C=US"), "duke");
        assert_eq!(get("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US"), "duke@sme");
        assert_eq!(get("cn=duke,ou=sme,dc=mycp,dc=com"), "DUKE@SME");
        assert_eq!(get("cN=Duke,OU=JavaSoft,O=Sun Microsystems"), "DUKE");
        assert_eq!(
            get("OU=JavaSoft,O=Sun Microsystems,C=US"),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );

        // A comma escaped in the DN, matched by a pattern with commas.
        let m = PrincipalMapper::parse(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT").unwrap();
        assert_eq!(
            m.map(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz").as_deref(),
            Some(r"Tkac\, Adam")
        );
    }

    #[test]
    fn kafka_valid_and_invalid_rules() {
        for ok in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            PrincipalMapper::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
            "DEFAULT, RULE:a/b/X",
            "RULE:(unclosed/x/",
            "RULE:a/$1/",
            "RULE:(a)/$/",
            "RULE:(a)/x\\/",
            "RULE:(a)/${nope}/",
        ] {
            let err = PrincipalMapper::parse(bad).err();
            assert!(err.is_some(), "{bad} parsed");
        }
        let err = PrincipalMapper::parse("DEFAULT, FOO ,DEFAULT").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid ssl.principal.mapping.rules: expected DEFAULT or \
             RULE:pattern/replacement/[L|U] in \"FOO\""
        );
        let err = PrincipalMapper::parse("RULE:(x/$1/").unwrap_err();
        assert!(err.0.contains("\"RULE:(x/$1/\""), "{err}");
    }

    #[test]
    fn kafka_rule_splitting() {
        let count = |rules: &str| PrincipalMapper::parse(rules).unwrap().rules.len();
        assert_eq!(count("RULE://"), 1);
        assert_eq!(count("RULE:/.*/L"), 1);
        assert_eq!(count("  RULE:// ,  DEFAULT  "), 2);
        assert_eq!(count("  RULE:   /     / ,  DEFAULT  "), 2);
        assert_eq!(
            count("  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  "),
            3
        );
        assert_eq!(count(",,RULE://,,,DEFAULT,,"), 2);
        assert_eq!(count(r"RULE:\**\/+/*/L,RULE:\/*\**/**/"), 2);
        assert_eq!(
            count(
                r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT"
            ),
            5
        );
        // Newlines separate entries too.
        assert_eq!(count("RULE:^CN=a$/x/\nRULE:^CN=b$/y/\n DEFAULT\n"), 3);
        assert_eq!(
            map("RULE:^CN=a$/x/\nRULE:^CN=b$/y/", "CN=b").as_deref(),
            Some("y")
        );
    }

    #[test]
    fn slashes_commas_and_whole_match() {
        // `\/` in pattern and replacement is a slash; commas stay in the rule.
        let rules = r"RULE:^CN=([^,]*),O=A\/B$/$1\/x/";
        assert_eq!(map(rules, "CN=svc,O=A/B").as_deref(), Some("svc/x"));
        // The whole DN must match (Java's matches()).
        assert_eq!(map("RULE:CN=svc/x/", "CN=svc,O=Acme"), None);
        assert_eq!(map("RULE:CN=svc/x/", "CN=svc").as_deref(), Some("x"));
        // The replacement is replaceAll's: a lazy pattern leaves the rest.
        assert_eq!(
            map("RULE:CN=(.*?)/[$1]/", "CN=alice").as_deref(),
            Some("[]alice")
        );
        // An empty result is no principal.
        assert_eq!(map("RULE:^CN=(.*)$/$1/,DEFAULT", "CN="), None);
    }

    #[test]
    fn java_replacement_syntax() {
        // `$1x` is group 1 then `x`.
        assert_eq!(map("RULE:^CN=(.*)$/$1x/", "CN=a").as_deref(), Some("ax"));
        // `$12` with one group: group 1 then `2` (Java takes digits while
        // they name a group).
        assert_eq!(map("RULE:^CN=(.*)$/$12/", "CN=a").as_deref(), Some("a2"));
        // With twelve groups it is group 12.
        let twelve = "RULE:^(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)$/$12-$1/";
        assert_eq!(map(twelve, "abcdefghijkl").as_deref(), Some("l-a"));
        // A group the pattern lacks is literal text (Kafka's rewrite).
        assert_eq!(
            map("RULE:^CN=(.*)$/$1@$3/", "CN=a").as_deref(),
            Some("a@$3")
        );
        // `\$` and `\\` are literal; `$0` is the whole match.
        assert_eq!(
            map(r"RULE:^CN=(.*)$/\$\\$0/", "CN=a").as_deref(),
            Some(r"$\CN=a")
        );
        // Named groups.
        assert_eq!(
            map("RULE:^CN=(?P<user>[^,]*).*$/${user}!/", "CN=bob,O=x").as_deref(),
            Some("bob!")
        );
        // Java's (?i).
        assert_eq!(
            map("RULE:(?i)^cn=([^,]*),o=acme$/$1/L", "CN=Bob,O=ACME").as_deref(),
            Some("bob")
        );
    }
}
