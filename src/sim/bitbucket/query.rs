//! BBQL (`q`) and `sort`: the query-language subset agents use, and the filtered, sorted page.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Field(String),
    Literal(Value),
    Op(&'static str),
    And,
    Or,
    Open,
    Close,
}

#[derive(Debug)]
pub(super) enum Expr {
    Compare(String, &'static str, Value),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

pub(super) fn tokenize(q: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            tokens.push(if c == '(' { Token::Open } else { Token::Close });
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\\') => {
                        s.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Token::Literal(Value::String(s)));
        } else if let Some(op) = ["!=", "!~", ">=", "<=", "=", "~", ">", "<"]
            .into_iter()
            .find(|op| chars[i..].iter().take(op.len()).collect::<String>() == *op)
        {
            tokens.push(Token::Op(op));
            i += op.len();
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || "_-.:+".contains(chars[i]))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "AND" | "and" => Token::And,
                "OR" | "or" => Token::Or,
                "null" => Token::Literal(Value::Null),
                "true" => Token::Literal(json!(true)),
                "false" => Token::Literal(json!(false)),
                _ => match word.parse::<f64>() {
                    Ok(n) => Token::Literal(json!(n)),
                    // Unquoted datetimes compare as text, which orders ISO-8601 correctly.
                    Err(_) if word.starts_with(|c: char| c.is_ascii_digit()) => {
                        Token::Literal(json!(word))
                    }
                    Err(_) => Token::Field(word),
                },
            });
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(tokens)
}

pub(super) struct BbqlParser {
    tokens: Vec<Token>,
    at: usize,
}

impl BbqlParser {
    pub(super) fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    pub(super) fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    pub(super) fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    pub(super) fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("expected ')'".into()),
                }
            }
            Some(Token::Field(field)) => match (self.next(), self.next()) {
                (Some(Token::Op(op)), Some(Token::Literal(value))) => {
                    Ok(Expr::Compare(field, op, value))
                }
                _ => Err(format!("expected an operator and a value after '{field}'")),
            },
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("unexpected end of query".into()),
        }
    }
}

pub(super) fn parse_bbql(q: &str) -> Result<Expr, String> {
    let mut parser = BbqlParser {
        tokens: tokenize(q)?,
        at: 0,
    };
    let expr = parser.or()?;
    if parser.at < parser.tokens.len() {
        return Err("unexpected text after the expression".into());
    }
    Ok(expr)
}

/// Every value at a dot path, fanning out over arrays (`reviewers.uuid`).
pub(super) fn values_at<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for key in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(key) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(found) => next.push(found),
                None => {}
            }
        }
        current = next;
    }
    current
}

pub(super) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

pub(super) fn matches(expr: &Expr, item: &Value) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, item) && matches(b, item),
        Expr::Or(a, b) => matches(a, item) || matches(b, item),
        Expr::Compare(field, op, wanted) => {
            let found: Vec<&Value> = values_at(item, field)
                .into_iter()
                .filter(|v| !v.is_null())
                .collect();
            let contains = |v: &Value| match (v.as_str(), wanted.as_str()) {
                (Some(s), Some(w)) => s.to_lowercase().contains(&w.to_lowercase()),
                _ => false,
            };
            let equal = |v: &Value| compare(v, wanted) == Some(Ordering::Equal);
            match *op {
                "=" if wanted.is_null() => found.is_empty(),
                "!=" if wanted.is_null() => !found.is_empty(),
                "=" => found.iter().any(|v| equal(v)),
                "!=" => !found.iter().any(|v| equal(v)),
                "~" => found.iter().any(|v| contains(v)),
                "!~" => !found.iter().any(|v| contains(v)),
                ">" => found
                    .iter()
                    .any(|v| compare(v, wanted) == Some(Ordering::Greater)),
                "<" => found
                    .iter()
                    .any(|v| compare(v, wanted) == Some(Ordering::Less)),
                ">=" => found.iter().any(|v| {
                    matches!(
                        compare(v, wanted),
                        Some(Ordering::Greater | Ordering::Equal)
                    )
                }),
                _ => found
                    .iter()
                    .any(|v| matches!(compare(v, wanted), Some(Ordering::Less | Ordering::Equal))),
            }
        }
    }
}

pub(super) fn fields_of<'a>(expr: &'a Expr, out: &mut Vec<&'a str>) {
    match expr {
        Expr::Compare(field, ..) => out.push(field),
        Expr::And(a, b) | Expr::Or(a, b) => {
            fields_of(a, out);
            fields_of(b, out);
        }
    }
}

/// A field is known when some item has its first segment (Bitbucket checks against the schema).
pub(super) fn known_field(items: &[Value], path: &str) -> bool {
    let root = path.split('.').next().unwrap_or(path);
    items.is_empty() || items.iter().any(|i| i.get(root).is_some())
}

/// Applies `q` and `sort` from the query string.
pub(super) fn filter_and_sort(
    mut items: Vec<Value>,
    query: &crate::sim::Query,
) -> Result<Vec<Value>, Response> {
    if let Some(q) = param(query, "q").filter(|q| !q.trim().is_empty()) {
        let expr = parse_bbql(q).map_err(|e| bad_request(&format!("Invalid query: {e}")))?;
        let mut fields = Vec::new();
        fields_of(&expr, &mut fields);
        if let Some(unknown) = fields.iter().find(|f| !known_field(&items, f)) {
            return Err(bad_request(&format!("Invalid field name: '{unknown}'")));
        }
        items.retain(|i| matches(&expr, i));
    }
    if let Some(sort) = param(query, "sort").filter(|s| !s.is_empty()) {
        let (descending, field) = match sort.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, sort),
        };
        if !known_field(&items, field) {
            return Err(bad_request(&format!("Invalid sort field: '{field}'")));
        }
        items.sort_by(|a, b| {
            let (x, y) = (
                values_at(a, field).first().copied(),
                values_at(b, field).first().copied(),
            );
            let order = match (x, y) {
                (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (None, None) => Ordering::Equal,
            };
            if descending { order.reverse() } else { order }
        });
    }
    Ok(items)
}

/// One page of a collection after `q` and `sort`.
pub(super) fn page(
    state: &SimState,
    uri: &axum::http::Uri,
    query: &crate::sim::Query,
    items: Vec<Value>,
    max: usize,
) -> Reply {
    let items = filter_and_sort(items, query)?;
    ok(bitbucket_page(state, uri, query, items, max)?)
}
