//! A renderer for the subset of Terraform's template syntax the user-data templates use, so
//! that cloud-config/ is tested where Terraform is not installed (and compared with
//! `terraform console` where it is).
//!
//! `${expr}` interpolation; `%{ if expr }` / `%{ else }` / `%{ endif }`; the strip marker `~`
//! (`${~`, `~}`) trimming the whitespace of the adjacent line of literal text (newline
//! included), as Terraform does; `$${` and `%%{` for literal `${` and `%{`. Expressions: a
//! variable, `name["key"]` on a map, `"string"` literals without escapes, `jsonencode(expr)` and
//! `base64encode(expr)` on strings, and `==` / `!=` between two of those. Like Terraform, a
//! variable the template names anywhere, in a branch not taken too, must be given. Anything
//! else is an error, so a template that outgrows this renderer fails here loudly.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;

/// A template variable: a string, or a map of strings (`units`).
#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Map(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Str(String),
    Var(String),
    Index(String, String),
    Call(String, Box<Expr>),
    Compare {
        equal: bool,
        left: Box<Expr>,
        right: Box<Expr>,
    },
}

#[derive(Debug)]
enum Piece {
    Lit(String),
    Interp(Expr),
    If(Expr),
    Else,
    EndIf,
}

#[derive(Debug)]
enum Node {
    Lit(String),
    Interp(Expr),
    If {
        cond: Expr,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// `template` rendered with `vars`, as Terraform's `templatefile()` would.
pub fn render(template: &str, vars: &BTreeMap<String, Value>) -> Result<String, String> {
    let pieces = lex(template)?;
    for name in pieces_variables(&pieces) {
        if !vars.contains_key(&name) {
            return Err(format!("vars map does not contain key {name:?}"));
        }
    }
    let mut iter = pieces.into_iter();
    let (nodes, end) = parse_nodes(&mut iter)?;
    if let Some(end) = end {
        return Err(format!("unexpected {end:?}"));
    }
    let mut out = String::new();
    emit(&nodes, vars, &mut out)?;
    Ok(out)
}

/// The variables `template` names.
pub fn variables(template: &str) -> Result<BTreeSet<String>, String> {
    Ok(pieces_variables(&lex(template)?))
}

fn pieces_variables(pieces: &[Piece]) -> BTreeSet<String> {
    fn walk(e: &Expr, out: &mut BTreeSet<String>) {
        match e {
            Expr::Str(_) => {}
            Expr::Var(v) | Expr::Index(v, _) => {
                out.insert(v.clone());
            }
            Expr::Call(_, arg) => walk(arg, out),
            Expr::Compare { left, right, .. } => {
                walk(left, out);
                walk(right, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for piece in pieces {
        if let Piece::Interp(e) | Piece::If(e) = piece {
            walk(e, &mut out);
        }
    }
    out
}

/// Splits a template into literal text and template sequences, applying escapes and strip
/// markers.
fn lex(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after) = rest
            .strip_prefix("$${")
            .or_else(|| rest.strip_prefix("%%{"))
        {
            lit.push(rest.chars().next().unwrap());
            lit.push('{');
            rest = after;
            continue;
        }
        let directive = rest.starts_with("%{");
        if !directive && !rest.starts_with("${") {
            let c = rest.chars().next().unwrap();
            lit.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let body = &rest[2..];
        let close = find_close(body).ok_or("unclosed template sequence")?;
        let mut inner = &body[..close];
        rest = &body[close + 1..];
        if let Some(i) = inner.strip_prefix('~') {
            inner = i;
            strip_last_line(&mut lit);
        }
        if let Some(i) = inner.strip_suffix('~') {
            inner = i;
            rest = strip_first_line(rest);
        }
        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
        pieces.push(if directive {
            directive_piece(inner.trim())?
        } else {
            Piece::Interp(parse_expr(inner)?)
        });
    }
    pieces.push(Piece::Lit(lit));
    Ok(pieces)
}

/// `${~`: Terraform's scanner cuts literal text into lines (each with its newline), and the
/// strip marker trims the whitespace of the one line next to it: here the last.
fn strip_last_line(lit: &mut String) {
    let body = lit.strip_suffix('\n').unwrap_or(lit);
    let start = body.rfind('\n').map_or(0, |i| i + 1);
    let kept = start + lit[start..].trim_end().len();
    lit.truncate(kept);
}

/// `~}`: trims the whitespace of the first line (with its newline) of what follows.
fn strip_first_line(rest: &str) -> &str {
    let end = rest.find('\n').map_or(rest.len(), |i| i + 1);
    let kept = rest[..end].trim_start().len();
    &rest[end - kept..]
}

/// Where the `}` closing a template sequence is in `body`, skipping quoted strings.
fn find_close(body: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in body.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn directive_piece(text: &str) -> Result<Piece, String> {
    match text {
        "else" => Ok(Piece::Else),
        "endif" => Ok(Piece::EndIf),
        _ => match text.strip_prefix("if ") {
            Some(cond) => Ok(Piece::If(parse_expr(cond)?)),
            None => Err(format!("unsupported directive %{{{text}}}")),
        },
    }
}

/// Nodes up to the end or to an `else`/`endif`, which is returned.
fn parse_nodes(
    pieces: &mut impl Iterator<Item = Piece>,
) -> Result<(Vec<Node>, Option<Piece>), String> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.next() {
        match piece {
            Piece::Lit(s) => nodes.push(Node::Lit(s)),
            Piece::Interp(e) => nodes.push(Node::Interp(e)),
            Piece::Else | Piece::EndIf => return Ok((nodes, Some(piece))),
            Piece::If(cond) => {
                let (then, end) = parse_nodes(pieces)?;
                let otherwise = match end {
                    Some(Piece::EndIf) => Vec::new(),
                    Some(Piece::Else) => match parse_nodes(pieces)? {
                        (otherwise, Some(Piece::EndIf)) => otherwise,
                        _ => return Err("%{ else } without %{ endif }".into()),
                    },
                    _ => return Err("%{ if } without %{ endif }".into()),
                };
                nodes.push(Node::If {
                    cond,
                    then,
                    otherwise,
                });
            }
        }
    }
    Ok((nodes, None))
}

fn emit(nodes: &[Node], vars: &BTreeMap<String, Value>, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Lit(s) => out.push_str(s),
            Node::Interp(e) => out.push_str(&eval_str(e, vars)?),
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                let branch = if eval_bool(cond, vars)? {
                    then
                } else {
                    otherwise
                };
                emit(branch, vars, out)?;
            }
        }
    }
    Ok(())
}

fn eval_str(e: &Expr, vars: &BTreeMap<String, Value>) -> Result<String, String> {
    match e {
        Expr::Str(s) => Ok(s.clone()),
        Expr::Var(v) => match &vars[v] {
            Value::Str(s) => Ok(s.clone()),
            Value::Map(_) => Err(format!("{v} is a map, not a string")),
        },
        Expr::Index(v, key) => match &vars[v] {
            Value::Map(m) => m.get(key).cloned().ok_or(format!("{v} has no key {key:?}")),
            Value::Str(_) => Err(format!("{v} is a string, not a map")),
        },
        Expr::Call(f, arg) => {
            let arg = eval_str(arg, vars)?;
            match f.as_str() {
                "jsonencode" => Ok(json_string(&arg)),
                "base64encode" => Ok(base64::engine::general_purpose::STANDARD.encode(arg)),
                _ => Err(format!("unsupported function {f}")),
            }
        }
        Expr::Compare { .. } => Err("a comparison is not a string".into()),
    }
}

fn eval_bool(e: &Expr, vars: &BTreeMap<String, Value>) -> Result<bool, String> {
    match e {
        Expr::Compare { equal, left, right } => {
            Ok((eval_str(left, vars)? == eval_str(right, vars)?) == *equal)
        }
        _ => Err(format!("not a condition: {e:?}")),
    }
}

/// A string as Terraform's jsonencode writes it (Go's encoding/json): `<`, `>`, `&`, U+2028 and
/// U+2029 escaped as `\uXXXX` too.
pub fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Open(char),
    Close(char),
    Equal(bool),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' | '[' => out.push(Token::Open(c)),
            ')' | ']' => out.push(Token::Close(c)),
            '=' | '!' if chars.next_if_eq(&'=').is_some() => out.push(Token::Equal(c == '=')),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\' | '$' | '%') | None => {
                            return Err(format!("unsupported string literal in {text:?}"))
                        }
                        Some(c) => s.push(c),
                    }
                }
                out.push(Token::Str(s));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut s = String::from(c);
                while let Some(c) = chars.next_if(|c| c.is_alphanumeric() || *c == '_') {
                    s.push(c);
                }
                out.push(Token::Ident(s));
            }
            _ => return Err(format!("unsupported expression {text:?}")),
        }
    }
    Ok(out)
}

fn parse_expr(text: &str) -> Result<Expr, String> {
    let tokens = tokens(text)?;
    let mut at = 0;
    let expr = parse_comparison(&tokens, &mut at)?;
    if at != tokens.len() {
        return Err(format!("unsupported expression {text:?}"));
    }
    Ok(expr)
}

fn parse_comparison(t: &[Token], at: &mut usize) -> Result<Expr, String> {
    let left = parse_primary(t, at)?;
    if let Some(Token::Equal(equal)) = t.get(*at) {
        *at += 1;
        let right = parse_primary(t, at)?;
        return Ok(Expr::Compare {
            equal: *equal,
            left: Box::new(left),
            right: Box::new(right),
        });
    }
    Ok(left)
}

fn parse_primary(t: &[Token], at: &mut usize) -> Result<Expr, String> {
    let token = t.get(*at).ok_or("expression ends early")?;
    *at += 1;
    match token {
        Token::Str(s) => Ok(Expr::Str(s.clone())),
        Token::Ident(name) => match t.get(*at) {
            Some(Token::Open('(')) => {
                *at += 1;
                let arg = parse_comparison(t, at)?;
                expect(t, at, Token::Close(')'))?;
                Ok(Expr::Call(name.clone(), Box::new(arg)))
            }
            Some(Token::Open('[')) => {
                *at += 1;
                let Some(Token::Str(key)) = t.get(*at) else {
                    return Err(format!("{name}[...]: only a string key is supported"));
                };
                *at += 1;
                expect(t, at, Token::Close(']'))?;
                Ok(Expr::Index(name.clone(), key.clone()))
            }
            _ => Ok(Expr::Var(name.clone())),
        },
        other => Err(format!("unexpected {other:?}")),
    }
}

fn expect(t: &[Token], at: &mut usize, want: Token) -> Result<(), String> {
    if t.get(*at) == Some(&want) {
        *at += 1;
        Ok(())
    } else {
        Err(format!("expected {want:?}, got {:?}", t.get(*at)))
    }
}
