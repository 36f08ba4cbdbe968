//! The message browser's filter language: a small expression over one record,
//! parsed by a hand-written tokenizer and recursive-descent parser into an
//! AST and evaluated in the broker. No user code runs (Kafbat replaced its
//! Groovy filters after an RCE advisory, GHSL-2023-229), there is no regex
//! (no catastrophic backtracking), and input is bounded: at most
//! [`FILTER_BYTES_MAX`] bytes and [`FILTER_DEPTH_MAX`] levels of nesting.
//!
//! ```text
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | cmp
//! cmp     := operand (op operand)?          op: == != < <= > >= contains startsWith endsWith
//! operand := "(" expr ")" | literal | field
//! field   := key | value | value.a.b[0] | value["a b"] | headers.NAME | headers["NAME"]
//!          | partition | offset | timestamp | eventType
//! ```
//!
//! An absent path is `null`. `==`, `<`, `<=`, `>`, `>=` and the string
//! operators are false on unlike types; `!=` is the negation of `==` (so
//! `value.x != null` tests presence). An operand alone is true when it is the
//! boolean `true`.

use std::cell::OnceCell;

/// Longest expression accepted, in bytes.
pub const FILTER_BYTES_MAX: usize = 1024;
/// Deepest nesting of parentheses and `!` accepted.
pub const FILTER_DEPTH_MAX: usize = 32;

/// A parse error: what is wrong and the 1-based column (in characters).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    pub message: String,
    pub column: usize,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at column {}", self.message, self.column)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(CmpOp),
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    EndsWith,
}

/// One step of a path into the JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Name(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Key,
    Value,
    ValuePath(Vec<Seg>),
    Header(String),
    Partition,
    Offset,
    Timestamp,
    EventType,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Lit(Lit),
    Field(Field),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Operand),
    Truthy(Operand),
}

fn err<T>(message: impl Into<String>, column: usize) -> Result<T, FilterError> {
    Err(FilterError {
        message: message.into(),
        column,
    })
}

/// Splits `src` into tokens with their 1-based columns.
fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let two = |a: char, b: char| c == a && next == Some(b);
        let (tok, len) = if two('=', '=') {
            (Tok::Op(CmpOp::Eq), 2)
        } else if two('!', '=') {
            (Tok::Op(CmpOp::Ne), 2)
        } else if two('<', '=') {
            (Tok::Op(CmpOp::Le), 2)
        } else if two('>', '=') {
            (Tok::Op(CmpOp::Ge), 2)
        } else if two('&', '&') {
            (Tok::And, 2)
        } else if two('|', '|') {
            (Tok::Or, 2)
        } else {
            match c {
                '<' => (Tok::Op(CmpOp::Lt), 1),
                '>' => (Tok::Op(CmpOp::Gt), 1),
                '!' => (Tok::Not, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                '[' => (Tok::LBracket, 1),
                ']' => (Tok::RBracket, 1),
                '.' => (Tok::Dot, 1),
                '"' | '\'' => {
                    let (s, len) = string(&chars[i..], col)?;
                    (Tok::Str(s), len)
                }
                c if c.is_ascii_digit()
                    || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) =>
                {
                    let start = i;
                    let mut j = i + 1;
                    while j < chars.len()
                        && (chars[j].is_ascii_digit()
                            || matches!(chars[j], '.' | 'e' | 'E')
                            || (matches!(chars[j], '+' | '-') && matches!(chars[j - 1], 'e' | 'E')))
                    {
                        j += 1;
                    }
                    let text: String = chars[start..j].iter().collect();
                    match text.parse::<f64>() {
                        Ok(n) if n.is_finite() => (Tok::Num(n), j - start),
                        _ => return err(format!("bad number '{text}'"), col),
                    }
                }
                c if ident_char(c) => {
                    let start = i;
                    let mut j = i;
                    while j < chars.len() && ident_char(chars[j]) {
                        j += 1;
                    }
                    let word: String = chars[start..j].iter().collect();
                    let tok = match word.as_str() {
                        "contains" => Tok::Op(CmpOp::Contains),
                        "startsWith" => Tok::Op(CmpOp::StartsWith),
                        "endsWith" => Tok::Op(CmpOp::EndsWith),
                        _ => Tok::Ident(word),
                    };
                    (tok, j - start)
                }
                c => return err(format!("unexpected character '{c}'"), col),
            }
        };
        out.push((tok, col));
        i += len;
    }
    Ok(out)
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}

/// A quoted string starting at `chars[0]`; returns it and the characters used.
fn string(chars: &[char], col: usize) -> Result<(String, usize), FilterError> {
    let quote = chars[0];
    let mut s = String::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((s, i + 1)),
            '\\' => {
                let Some(&e) = chars.get(i + 1) else { break };
                s.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '\\' | '"' | '\'' => e,
                    _ => return err(format!("unknown escape '\\{e}'"), col + i),
                });
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    err("unterminated string", col)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    /// The column just past the input, for errors at its end.
    end_col: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.1).unwrap_or(self.end_col)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > FILTER_DEPTH_MAX {
            return err(
                format!("nested deeper than {FILTER_DEPTH_MAX} levels"),
                self.col(),
            );
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.bump();
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.bump();
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.peek() == Some(&Tok::Not) {
            self.bump();
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, FilterError> {
        if self.peek() == Some(&Tok::LParen) {
            self.bump();
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            let col = self.col();
            if self.bump() != Some(Tok::RParen) {
                return err("expected ')'", col);
            }
            return Ok(inner);
        }
        let left = self.operand()?;
        if let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            self.bump();
            let right = self.operand()?;
            return Ok(Expr::Cmp(left, op, right));
        }
        Ok(Expr::Truthy(left))
    }

    fn prev_col(&self) -> usize {
        self.toks
            .get(self.pos.saturating_sub(1))
            .map(|t| t.1)
            .unwrap_or(self.end_col)
    }

    fn operand(&mut self) -> Result<Operand, FilterError> {
        let col = self.col();
        match self.bump() {
            Some(Tok::Str(s)) => Ok(Operand::Lit(Lit::Str(s))),
            Some(Tok::Num(n)) => Ok(Operand::Lit(Lit::Num(n))),
            Some(Tok::Ident(w)) => match w.as_str() {
                "true" => Ok(Operand::Lit(Lit::Bool(true))),
                "false" => Ok(Operand::Lit(Lit::Bool(false))),
                "null" => Ok(Operand::Lit(Lit::Null)),
                "key" => Ok(Operand::Field(Field::Key)),
                "partition" => Ok(Operand::Field(Field::Partition)),
                "offset" => Ok(Operand::Field(Field::Offset)),
                "timestamp" => Ok(Operand::Field(Field::Timestamp)),
                "eventType" => Ok(Operand::Field(Field::EventType)),
                "value" => self.value_path(),
                "headers" => self.header(col),
                _ => err(
                    format!(
                        "unknown field '{w}' (key, value, value.PATH, headers.NAME, partition, offset, timestamp, eventType)"
                    ),
                    col,
                ),
            },
            Some(_) => err("expected a field or a literal", col),
            None => err("expected a field or a literal, found the end", col),
        }
    }

    fn value_path(&mut self) -> Result<Operand, FilterError> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.bump();
                    let col = self.col();
                    match self.bump() {
                        Some(Tok::Ident(name)) => segs.push(Seg::Name(name)),
                        // `value.a.0` would tokenize as a number: say how to index.
                        _ => return err("expected a name after '.' (use [N] for an index)", col),
                    }
                }
                Some(Tok::LBracket) => {
                    self.bump();
                    let col = self.col();
                    let seg = match self.bump() {
                        Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 && n < 1e9 => {
                            Seg::Index(n as usize)
                        }
                        Some(Tok::Str(s)) => Seg::Name(s),
                        _ => return err("expected an index or a quoted name", col),
                    };
                    let col = self.col();
                    if self.bump() != Some(Tok::RBracket) {
                        return err("expected ']'", col);
                    }
                    segs.push(seg);
                }
                _ => break,
            }
            if segs.len() > FILTER_DEPTH_MAX {
                return err(
                    format!("a path longer than {FILTER_DEPTH_MAX} steps"),
                    self.col(),
                );
            }
        }
        if segs.is_empty() {
            Ok(Operand::Field(Field::Value))
        } else {
            Ok(Operand::Field(Field::ValuePath(segs)))
        }
    }

    /// `headers.NAME` (the rest of a dotted name is the header name, so
    /// `headers.herald.original.topic` works) or `headers["NAME"]`.
    fn header(&mut self, col: usize) -> Result<Operand, FilterError> {
        match self.bump() {
            Some(Tok::Dot) => {
                let mut name = match self.bump() {
                    Some(Tok::Ident(n)) => n,
                    _ => return err("expected a header name after 'headers.'", self.prev_col()),
                };
                while self.peek() == Some(&Tok::Dot) {
                    self.bump();
                    match self.bump() {
                        Some(Tok::Ident(n)) => {
                            name.push('.');
                            name.push_str(&n);
                        }
                        _ => return err("expected a name after '.'", self.prev_col()),
                    }
                }
                Ok(Operand::Field(Field::Header(name)))
            }
            Some(Tok::LBracket) => {
                let Some(Tok::Str(name)) = self.bump() else {
                    return err("expected a quoted header name", self.prev_col());
                };
                if self.bump() != Some(Tok::RBracket) {
                    return err("expected ']'", self.prev_col());
                }
                Ok(Operand::Field(Field::Header(name)))
            }
            _ => err("expected headers.NAME or headers[\"NAME\"]", col),
        }
    }
}

/// Parses a filter expression.
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    if src.len() > FILTER_BYTES_MAX {
        return err(
            format!("longer than {FILTER_BYTES_MAX} bytes"),
            FILTER_BYTES_MAX + 1,
        );
    }
    let toks = tokenize(src)?;
    let mut p = Parser {
        end_col: src.chars().count() + 1,
        toks,
        pos: 0,
        depth: 0,
    };
    if p.toks.is_empty() {
        return err("empty expression", 1);
    }
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return err("unexpected token", p.col());
    }
    Ok(e)
}

/// What an expression sees of one record.
pub struct RecordView<'a> {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(String, Option<bytes::Bytes>)],
    pub event_type: Option<&'a str>,
    /// The value parsed as JSON, once, if a path asks for it.
    json: OnceCell<Option<serde_json::Value>>,
}

impl<'a> RecordView<'a> {
    pub fn new(
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        headers: &'a [(String, Option<bytes::Bytes>)],
        event_type: Option<&'a str>,
    ) -> Self {
        RecordView {
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
            event_type,
            json: OnceCell::new(),
        }
    }

    fn json(&self) -> Option<&serde_json::Value> {
        self.json
            .get_or_init(|| self.value.and_then(|v| serde_json::from_slice(v).ok()))
            .as_ref()
    }
}

/// A value during evaluation.
#[derive(Debug, PartialEq)]
enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(std::borrow::Cow<'a, str>),
    /// A JSON object or array: only `== null`/`!= null` mean anything.
    Composite,
}

fn text(b: Option<&[u8]>) -> Val<'_> {
    match b {
        None => Val::Null,
        Some(b) => Val::Str(String::from_utf8_lossy(b)),
    }
}

fn from_json(v: Option<&serde_json::Value>) -> Val<'_> {
    match v {
        None | Some(serde_json::Value::Null) => Val::Null,
        Some(serde_json::Value::Bool(b)) => Val::Bool(*b),
        Some(serde_json::Value::Number(n)) => n.as_f64().map(Val::Num).unwrap_or(Val::Null),
        Some(serde_json::Value::String(s)) => Val::Str(std::borrow::Cow::Borrowed(s)),
        Some(_) => Val::Composite,
    }
}

fn operand<'a>(o: &'a Operand, r: &'a RecordView<'a>) -> Val<'a> {
    match o {
        Operand::Lit(Lit::Null) => Val::Null,
        Operand::Lit(Lit::Bool(b)) => Val::Bool(*b),
        Operand::Lit(Lit::Num(n)) => Val::Num(*n),
        Operand::Lit(Lit::Str(s)) => Val::Str(std::borrow::Cow::Borrowed(s)),
        Operand::Field(f) => match f {
            Field::Key => text(r.key),
            Field::Value => text(r.value),
            Field::Partition => Val::Num(r.partition as f64),
            Field::Offset => Val::Num(r.offset as f64),
            Field::Timestamp => Val::Num(r.timestamp as f64),
            Field::EventType => match r.event_type {
                Some(t) => Val::Str(std::borrow::Cow::Borrowed(t)),
                None => Val::Null,
            },
            Field::Header(name) => match r.headers.iter().find(|(k, _)| k == name) {
                Some((_, v)) => text(v.as_deref()),
                None => Val::Null,
            },
            Field::ValuePath(segs) => {
                let mut cur = r.json();
                for s in segs {
                    cur = match (cur, s) {
                        (Some(serde_json::Value::Object(m)), Seg::Name(n)) => m.get(n),
                        (Some(serde_json::Value::Array(a)), Seg::Index(i)) => a.get(*i),
                        _ => None,
                    };
                }
                from_json(cur)
            }
        },
    }
}

fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ => false,
    }
}

fn compare(a: &Val, op: CmpOp, b: &Val) -> bool {
    use std::cmp::Ordering;
    let ord = match (a, b) {
        (Val::Num(x), Val::Num(y)) => x.partial_cmp(y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        _ => None,
    };
    match op {
        CmpOp::Eq => equal(a, b),
        CmpOp::Ne => !equal(a, b),
        CmpOp::Lt => ord == Some(Ordering::Less),
        CmpOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
        CmpOp::Gt => ord == Some(Ordering::Greater),
        CmpOp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
        CmpOp::Contains | CmpOp::StartsWith | CmpOp::EndsWith => match (a, b) {
            (Val::Str(x), Val::Str(y)) => match op {
                CmpOp::Contains => x.contains(y.as_ref()),
                CmpOp::StartsWith => x.starts_with(y.as_ref()),
                _ => x.ends_with(y.as_ref()),
            },
            _ => false,
        },
    }
}

/// Whether the record matches. Recursion is bounded by the parser's depth limit.
pub fn eval(e: &Expr, r: &RecordView) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, r) || eval(b, r),
        Expr::And(a, b) => eval(a, r) && eval(b, r),
        Expr::Not(a) => !eval(a, r),
        Expr::Cmp(a, op, b) => compare(&operand(a, r), *op, &operand(b, r)),
        Expr::Truthy(a) => operand(a, r) == Val::Bool(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec<'a>(
        key: Option<&'a str>,
        value: Option<&'a str>,
        headers: &'a [(String, Option<bytes::Bytes>)],
    ) -> RecordView<'a> {
        RecordView::new(
            2,
            42,
            1_700_000_000_000,
            key.map(str::as_bytes),
            value.map(str::as_bytes),
            headers,
            Some("OrderPlaced"),
        )
    }

    fn matches(expr: &str, r: &RecordView) -> bool {
        eval(&parse(expr).expect(expr), r)
    }

    #[test]
    fn the_contract_examples() {
        let headers = vec![(
            "eventType".to_string(),
            Some(bytes::Bytes::from("OrderPlaced")),
        )];
        let v = r#"{"total_cents": 12000, "items": [{"sku": "a"}], "note": "card declined"}"#;
        let r = rec(Some("order-42"), Some(v), &headers);
        assert!(matches(r#"key == "order-42""#, &r));
        assert!(matches(r#"key == 'order-42'"#, &r));
        assert!(!matches(r#"key == "order-43""#, &r));
        assert!(matches(
            r#"value.total_cents > 10000 && headers.eventType == "OrderPlaced""#,
            &r
        ));
        assert!(matches(r#"value contains "declined""#, &r));
        assert!(matches(r#"value.items[0].sku == "a""#, &r));
        assert!(matches(r#"value["items"][0]["sku"] == "a""#, &r));
        assert!(matches(r#"value.items[1].sku == null"#, &r));
        assert!(matches(
            r#"value.missing == null && value.total_cents != null"#,
            &r
        ));
        assert!(matches("partition == 2 && offset >= 42 && offset < 43", &r));
        assert!(matches("timestamp > 1600000000000", &r));
        assert!(matches(r#"eventType == "OrderPlaced""#, &r));
        assert!(matches(
            r#"key startsWith "order-" && key endsWith "42""#,
            &r
        ));
        assert!(matches(r#"!(key == "x") || false"#, &r));
        assert!(!matches(r#"!(key == "order-42")"#, &r));
    }

    #[test]
    fn unlike_types_compare_false_and_ne_is_the_negation() {
        let h = vec![];
        let r = rec(
            Some("5"),
            Some(r#"{"n": 5, "s": "5", "b": true, "o": {}}"#),
            &h,
        );
        assert!(!matches(r#"value.n == "5""#, &r));
        assert!(matches(r#"value.n != "5""#, &r));
        assert!(!matches(r#"value.s > 4"#, &r));
        assert!(!matches(r#"value.n contains "5""#, &r));
        assert!(matches("value.b", &r));
        assert!(!matches("value.n", &r));
        assert!(matches("value.o != null", &r));
        assert!(!matches("value.o == 1", &r));
        assert!(matches(
            "value.n == 5.0 && value.n <= 5 && value.n >= 5",
            &r
        ));
    }

    #[test]
    fn non_json_values_and_missing_parts_are_null() {
        let h = vec![];
        let r = rec(None, Some("not json"), &h);
        assert!(matches("key == null", &r));
        assert!(matches("value.a == null", &r));
        assert!(matches(r#"value == "not json""#, &r));
        assert!(matches("headers.x == null", &r));
        let r = rec(None, None, &h);
        assert!(matches("value == null", &r));
    }

    #[test]
    fn dotted_header_names() {
        let h = vec![
            (
                "herald.original.topic".to_string(),
                Some(bytes::Bytes::from("orders")),
            ),
            ("content-type".to_string(), None),
        ];
        let r = rec(None, None, &h);
        assert!(matches(r#"headers.herald.original.topic == "orders""#, &r));
        assert!(matches(
            r#"headers["herald.original.topic"] == "orders""#,
            &r
        ));
        assert!(matches("headers.content-type == null", &r));
    }

    #[test]
    fn precedence_and_binds_tighter_than_or() {
        let h = vec![];
        let r = rec(Some("a"), None, &h);
        // true || (false && false)
        assert!(matches(r#"key == "a" || key == "b" && key == "c""#, &r));
        // (true || false) && false
        assert!(!matches(r#"(key == "a" || key == "b") && key == "c""#, &r));
    }

    fn error(expr: &str) -> FilterError {
        parse(expr).expect_err(expr)
    }

    #[test]
    fn errors_carry_the_column() {
        assert_eq!(error(r#"key == "abc"#).column, 8);
        assert!(error(r#"key == "abc"#).message.contains("unterminated"));
        assert_eq!(error("key = 1").column, 5);
        assert_eq!(error("foo == 1").column, 1);
        assert!(error("foo == 1").message.contains("unknown field"));
        assert_eq!(error("key ==").column, 7);
        assert_eq!(error("(key == 1").column, 10);
        assert_eq!(error("key == 1 )").column, 10);
        assert_eq!(error("").column, 1);
        assert_eq!(error("   ").column, 1);
        assert_eq!(error("value. == 1").column, 8);
        assert_eq!(error("value[-1] == 1").column, 7);
        assert_eq!(error("headers == 1").column, 1);
        assert_eq!(error(r#"key == "a\q""#).column, 10);
        assert_eq!(error("key == 1 && && 2").column, 13);
        assert!(
            error("a".repeat(FILTER_BYTES_MAX + 1).as_str())
                .message
                .contains("longer")
        );
        assert!(error("offset == 1e999").message.contains("bad number"));
        assert!(error("offset == 1.2.3").message.contains("bad number"));
        assert_eq!(error("key == \u{e9}\u{e9}#").column, 8);
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!(
            "{}key == 1{}",
            "(".repeat(FILTER_DEPTH_MAX),
            ")".repeat(FILTER_DEPTH_MAX)
        );
        assert!(parse(&ok).is_ok());
        let deep = format!(
            "{}key == 1{}",
            "(".repeat(FILTER_DEPTH_MAX + 1),
            ")".repeat(FILTER_DEPTH_MAX + 1)
        );
        assert!(error(&deep).message.contains("nested"));
        assert!(error(&"!".repeat(500)).message.contains("nested"));
        // Within the byte limit, the deepest input is rejected without recursion trouble.
        assert!(parse(&"(".repeat(FILTER_BYTES_MAX)).is_err());
        let path = format!("value{} == 1", ".a".repeat(40));
        assert!(error(&path).message.contains("path"));
    }

    #[test]
    fn long_chains_of_and_do_not_nest() {
        // Conjunctions make a left-leaning tree built iteratively; its
        // evaluation depth is bounded by the 1 KiB input (~200 levels).
        let e = vec!["offset == 42"; 60].join(" && ");
        assert!(e.len() <= FILTER_BYTES_MAX);
        let h = vec![];
        assert!(matches(&e, &rec(None, None, &h)));
    }

    #[test]
    fn huge_numbers() {
        let h = vec![];
        let r = rec(None, Some(r#"{"n": 1e300}"#), &h);
        assert!(matches("value.n > 99999999999999999999999999999999", &r));
        assert!(matches("offset > -99999999999999999999", &r));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_operator_soup(
            s in prop::collection::vec(
                prop::sample::select(vec![
                    "(", ")", "!", "&&", "||", "==", "<", ">=", "key", "value", ".", "[", "]",
                    "0", "\"a\"", "'", "\"", "headers", "contains", "null", "1e5", "-", " ",
                ]),
                0..120,
            )
        ) {
            let src = s.concat();
            if let Ok(e) = parse(&src) {
                let h = vec![];
                let _ = eval(&e, &rec(Some("k"), Some("{\"a\":[1]}"), &h));
            }
        }

        #[test]
        fn string_literals_round_trip(s in "[a-zA-Z0-9 ]{0,50}") {
            let h = vec![];
            let r = rec(Some(&s), None, &h);
            let expr = format!("key == \"{s}\"");
            prop_assert!(matches(&expr, &r));
        }
    }
}
