//! A small regular expression engine for KIP-848 `subscribed_topic_regex`
//! (Kafka matches whole topic names with RE2J). Supported: literals, `.`,
//! classes `[a-z_]` / `[^...]`, escapes (`\d \w \s`, `\.` ...), groups `( )`
//! and `(?: )`, alternation `|`, quantifiers `* + ?` (lazy forms too) and
//! `{n}`, `{n,}`, `{n,m}`, and the anchors `^` and `$`. Matching is a Pike VM:
//! time linear in program size times name length, no backtracking.

#[derive(Debug, Clone)]
enum Class {
    Any,
    Char(char),
    Set(bool, Vec<(char, char)>),
}

impl Class {
    fn matches(&self, c: char) -> bool {
        match self {
            Class::Any => true,
            Class::Char(x) => *x == c,
            Class::Set(neg, ranges) => ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *neg,
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Empty,
    Atom(Class),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Debug, Clone)]
enum Inst {
    Char(Class),
    Split(usize, usize),
    Jmp(usize),
    AssertStart,
    AssertEnd,
    Match,
}

/// Longest pattern accepted.
const PATTERN_CHARS_MAX: usize = 1024;
/// Largest compiled program (bounds `{n,m}` expansion).
const PROGRAM_MAX: usize = 20_000;
const REPEAT_MAX: u32 = 1000;

#[derive(Debug, Clone)]
pub struct Regex {
    prog: Vec<Inst>,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

fn class_escape(e: char) -> Option<Class> {
    Some(match e {
        'd' => Class::Set(false, vec![('0', '9')]),
        'D' => Class::Set(true, vec![('0', '9')]),
        'w' => Class::Set(false, vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]),
        'W' => Class::Set(true, vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')]),
        's' => Class::Set(false, vec![(' ', ' '), ('\t', '\r')]),
        'S' => Class::Set(true, vec![(' ', ' '), ('\t', '\r')]),
        'n' => Class::Char('\n'),
        't' => Class::Char('\t'),
        c if c.is_ascii_alphanumeric() => return None,
        c => Class::Char(c),
    })
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn alt(&mut self) -> Option<Node> {
        let mut alts = vec![self.concat()?];
        while self.peek() == Some('|') {
            self.pos += 1;
            alts.push(self.concat()?);
        }
        Some(if alts.len() == 1 {
            alts.pop()?
        } else {
            Node::Alt(alts)
        })
    }

    fn concat(&mut self) -> Option<Node> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Some(match items.len() {
            0 => Node::Empty,
            1 => items.pop()?,
            _ => Node::Concat(items),
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let s: String = self.chars[start..self.pos].iter().collect();
        s.parse().ok().filter(|n| *n <= REPEAT_MAX)
    }

    fn quantified(&mut self, atom: Node) -> Option<Node> {
        let mut node = atom;
        loop {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    self.pos += 1;
                    let min = self.number()?;
                    let max = if self.peek() == Some(',') {
                        self.pos += 1;
                        if self.peek() == Some('}') {
                            None
                        } else {
                            Some(self.number()?)
                        }
                    } else {
                        Some(min)
                    };
                    if self.peek() != Some('}') || max.is_some_and(|m| m < min) {
                        return None;
                    }
                    (min, max)
                }
                _ => return Some(node),
            };
            self.pos += 1;
            // Lazy and possessive suffixes do not change a whole-name match.
            if matches!(self.peek(), Some('?') | Some('+')) {
                self.pos += 1;
            }
            node = Node::Repeat(Box::new(node), min, max);
        }
    }

    fn atom(&mut self) -> Option<Node> {
        let c = self.next()?;
        Some(match c {
            '.' => Node::Atom(Class::Any),
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                self.depth += 1;
                if self.depth > 100 {
                    return None;
                }
                if self.peek() == Some('?') {
                    self.pos += 1;
                    if self.next()? != ':' {
                        return None;
                    }
                }
                let inner = self.alt()?;
                if self.next()? != ')' {
                    return None;
                }
                self.depth -= 1;
                inner
            }
            '\\' => Node::Atom(class_escape(self.next()?)?),
            '[' => {
                let mut neg = false;
                if self.peek() == Some('^') {
                    neg = true;
                    self.pos += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let mut c = self.next()?;
                    if c == ']' && !first {
                        break;
                    }
                    first = false;
                    if c == '\\' {
                        match class_escape(self.next()?)? {
                            Class::Char(x) => c = x,
                            Class::Set(false, r) => {
                                ranges.extend(r);
                                continue;
                            }
                            _ => return None,
                        }
                    }
                    if self.peek() == Some('-')
                        && self.chars.get(self.pos + 1).is_some_and(|n| *n != ']')
                    {
                        let hi = self.chars[self.pos + 1];
                        self.pos += 2;
                        if hi < c {
                            return None;
                        }
                        ranges.push((c, hi));
                    } else {
                        ranges.push((c, c));
                    }
                }
                Node::Atom(Class::Set(neg, ranges))
            }
            '*' | '+' | '?' | '{' | ')' => return None,
            c => Node::Atom(Class::Char(c)),
        })
    }
}

struct Compiler {
    prog: Vec<Inst>,
}

impl Compiler {
    fn emit(&mut self, i: Inst) -> Option<usize> {
        if self.prog.len() >= PROGRAM_MAX {
            return None;
        }
        self.prog.push(i);
        Some(self.prog.len() - 1)
    }

    fn node(&mut self, n: &Node) -> Option<()> {
        match n {
            Node::Empty => {}
            Node::Atom(c) => {
                self.emit(Inst::Char(c.clone()))?;
            }
            Node::Start => {
                self.emit(Inst::AssertStart)?;
            }
            Node::End => {
                self.emit(Inst::AssertEnd)?;
            }
            Node::Concat(items) => {
                for i in items {
                    self.node(i)?;
                }
            }
            Node::Alt(alts) => {
                let mut jumps = Vec::new();
                for (k, a) in alts.iter().enumerate() {
                    if k + 1 < alts.len() {
                        let split = self.emit(Inst::Split(0, 0))?;
                        self.node(a)?;
                        jumps.push(self.emit(Inst::Jmp(0))?);
                        let next = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, next);
                    } else {
                        self.node(a)?;
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jmp(end);
                }
            }
            Node::Repeat(inner, min, max) => {
                for _ in 0..*min {
                    self.node(inner)?;
                }
                match max {
                    None => {
                        // L: split(body, out); body; jmp L
                        let split = self.emit(Inst::Split(0, 0))?;
                        self.node(inner)?;
                        self.emit(Inst::Jmp(split))?;
                        let out = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, out);
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.emit(Inst::Split(0, 0))?);
                            self.node(inner)?;
                        }
                        let out = self.prog.len();
                        for s in splits {
                            self.prog[s] = Inst::Split(s + 1, out);
                        }
                    }
                }
            }
        }
        Some(())
    }
}

impl Regex {
    /// Compiles `pattern`; None if it is invalid or outside the supported syntax.
    pub fn new(pattern: &str) -> Option<Regex> {
        let chars: Vec<char> = pattern.chars().collect();
        if chars.len() > PATTERN_CHARS_MAX {
            return None;
        }
        let mut p = Parser {
            chars,
            pos: 0,
            depth: 0,
        };
        let ast = p.alt()?;
        if p.pos != p.chars.len() {
            return None;
        }
        let mut c = Compiler { prog: Vec::new() };
        c.node(&ast)?;
        c.emit(Inst::Match)?;
        Some(Regex { prog: c.prog })
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let mut clist: Vec<usize> = Vec::with_capacity(n);
        let mut nlist: Vec<usize> = Vec::with_capacity(n);
        let mut seen = vec![usize::MAX; n];
        self.add(&mut clist, &mut seen, 0, 0, chars.len(), 0);
        for (i, ch) in chars.iter().enumerate() {
            nlist.clear();
            let gen_next = i + 1;
            for &pc in &clist {
                if let Inst::Char(c) = &self.prog[pc]
                    && c.matches(*ch)
                {
                    self.add(
                        &mut nlist,
                        &mut seen,
                        pc + 1,
                        gen_next,
                        chars.len(),
                        gen_next,
                    );
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
            if clist.is_empty() {
                return false;
            }
        }
        clist.iter().any(|&pc| matches!(self.prog[pc], Inst::Match))
    }

    /// Follows the empty transitions from `pc` (iteratively, no recursion).
    fn add(
        &self,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        pc: usize,
        gen_id: usize,
        len: usize,
        pos: usize,
    ) {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if pc >= self.prog.len() || seen[pc] == gen_id {
                continue;
            }
            seen[pc] = gen_id;
            match &self.prog[pc] {
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::AssertStart => {
                    if pos == 0 {
                        stack.push(pc + 1);
                    }
                }
                Inst::AssertEnd => {
                    if pos == len {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char(_) | Inst::Match => list.push(pc),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p).unwrap().is_match(t)
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
        assert!(m("a|", ""));
        assert!(m(&"a*".repeat(200), &"a".repeat(249)));
        assert!(!m(&"(a*)*".repeat(50), &format!("{}b", "a".repeat(249))));
        for bad in [
            "(a", "a)", "*a", "[a", "a{3,1}", "\\q", "(?<n>a)", "a{99999}",
        ] {
            assert!(Regex::new(bad).is_none(), "{bad}");
        }
    }
}
