//! Filter expressions: a subset of CEL (the Common Expression Language), compiled once per feature
//! definition against the fields of its record type, then evaluated per event without lookups.
//!
//! Grammar: `||`, `&&`, `!`, parentheses, comparisons of a field with a literal (`==`, `!=`, `<`,
//! `<=`, `>`, `>=`), `field in [literal, ...]`, a boolean field alone, and the literals strings
//! (`"..."` or `'...'`), numbers, `true`, `false`, `null`. Enum fields compare with their symbols,
//! which are checked when compiled. A comparison with an absent (null) field is false, except
//! `== null`.

use crate::catalog::field::{Accessor, Field, FieldType, Val};
use crate::catalog::Row;
use crate::event::Event;

/// A filter that does not compile: what and where (1-based column).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (at column {column})")]
pub struct ExprError {
    /// What is wrong.
    pub message: String,
    /// Where, 1-based.
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |m: &str, at: usize| ExprError {
        message: m.into(),
        column: at + 1,
    };
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((Tok::LParen, start));
                i += 1;
            }
            b')' => {
                out.push((Tok::RParen, start));
                i += 1;
            }
            b'[' => {
                out.push((Tok::LBracket, start));
                i += 1;
            }
            b']' => {
                out.push((Tok::RBracket, start));
                i += 1;
            }
            b',' => {
                out.push((Tok::Comma, start));
                i += 1;
            }
            b'"' | b'\'' => {
                let end = src[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| err("unterminated string", start))?;
                out.push((Tok::Str(src[i + 1..i + 1 + end].to_string()), start));
                i += end + 2;
            }
            b'0'..=b'9' | b'-' | b'.' => {
                let mut j = i + 1;
                while j < bytes.len()
                    && (bytes[j].is_ascii_digit()
                        || bytes[j] == b'.'
                        || bytes[j] == b'e'
                        || bytes[j] == b'_')
                {
                    j += 1;
                }
                let text: String = src[i..j].chars().filter(|c| *c != '_').collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| err(&format!("bad number {text:?}"), start))?;
                out.push((Tok::Num(n), start));
                i = j;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                out.push((Tok::Ident(src[i..j].to_string()), start));
                i = j;
            }
            _ => {
                let two = src.get(i..i + 2).unwrap_or("");
                let op = ["==", "!=", "<=", ">=", "&&", "||"]
                    .into_iter()
                    .find(|o| *o == two);
                match (op, c) {
                    (Some(op), _) => {
                        out.push((Tok::Op(op), start));
                        i += 2;
                    }
                    (None, b'<') => {
                        out.push((Tok::Op("<"), start));
                        i += 1;
                    }
                    (None, b'>') => {
                        out.push((Tok::Op(">"), start));
                        i += 1;
                    }
                    (None, b'!') => {
                        out.push((Tok::Op("!"), start));
                        i += 1;
                    }
                    _ => return Err(err(&format!("unexpected character {:?}", c as char), start)),
                }
            }
        }
    }
    Ok(out)
}

/// A literal in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An enum symbol, resolved to its entry in the enum's symbol table when compiled.
    Sym(&'static str),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn flip(self) -> Self {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            other => other,
        }
    }
}

/// A compiled filter.
#[derive(Clone)]
pub enum Expr {
    /// Always true (no filter).
    True,
    /// A boolean field.
    Flag(Accessor),
    /// Negation.
    Not(Box<Expr>),
    /// All of.
    And(Vec<Expr>),
    /// Any of.
    Or(Vec<Expr>),
    /// Field compared with a literal.
    Cmp(Accessor, CmpOp, Lit),
    /// Field in a list of literals.
    In(Accessor, Vec<Lit>),
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expr::True => f.write_str("true"),
            Expr::Flag(_) => f.write_str("flag"),
            Expr::Not(e) => write!(f, "!({e:?})"),
            Expr::And(v) => write!(f, "and{v:?}"),
            Expr::Or(v) => write!(f, "or{v:?}"),
            Expr::Cmp(_, op, lit) => write!(f, "field {op:?} {lit:?}"),
            Expr::In(_, lits) => write!(f, "field in {lits:?}"),
        }
    }
}

fn cmp(value: Val<'_>, op: CmpOp, lit: &Lit) -> bool {
    match (value, lit) {
        (Val::Null, Lit::Null) => op == CmpOp::Eq,
        (_, Lit::Null) => op == CmpOp::Ne,
        (Val::Null, _) => false,
        (Val::Sym(a), Lit::Sym(b)) => {
            // Both point into the same static symbol table: equal symbols share an address.
            let same = std::ptr::eq(a.as_ptr(), b.as_ptr());
            match op {
                CmpOp::Eq => same,
                CmpOp::Ne => !same,
                _ => false,
            }
        }
        (Val::Str(a) | Val::Sym(a), Lit::Str(b)) => match op {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            _ => false,
        },
        (Val::Bool(a), Lit::Bool(b)) => match op {
            CmpOp::Eq => a == *b,
            CmpOp::Ne => a != *b,
            _ => false,
        },
        (Val::Num(a), Lit::Num(b)) => match op {
            CmpOp::Eq => a == *b,
            CmpOp::Ne => a != *b,
            CmpOp::Lt => a < *b,
            CmpOp::Le => a <= *b,
            CmpOp::Gt => a > *b,
            CmpOp::Ge => a >= *b,
        },
        _ => false,
    }
}

impl Expr {
    /// Evaluates the filter on one event.
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Expr::True => true,
            Expr::Flag(get) => matches!(get.read(event), Val::Bool(true)),
            Expr::Not(e) => !e.matches(event),
            Expr::And(all) => all.iter().all(|e| e.matches(event)),
            Expr::Or(any) => any.iter().any(|e| e.matches(event)),
            Expr::Cmp(get, op, lit) => cmp(get.read(event), *op, lit),
            Expr::In(get, lits) => {
                let v = get.read(event);
                lits.iter().any(|l| cmp(v, CmpOp::Eq, l))
            }
        }
    }
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    row: &'a Row,
    src: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn column(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |(_, c)| *c) + 1
    }
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            message: message.into(),
            column: self.column(),
        })
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Op("||")) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut items = vec![self.unary()?];
        while self.peek() == Some(&Tok::Op("&&")) {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.peek() == Some(&Tok::Op("!")) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.next() != Some(Tok::RParen) {
                self.pos -= 1;
                return self.fail("expected `)`");
            }
            return Ok(e);
        }
        self.comparison()
    }

    fn literal(&mut self) -> Result<Option<Lit>, ExprError> {
        Ok(match self.peek() {
            Some(Tok::Str(s)) => Some(Lit::Str(s.clone())),
            Some(Tok::Num(n)) => Some(Lit::Num(*n)),
            Some(Tok::Ident(i)) if i == "true" => Some(Lit::Bool(true)),
            Some(Tok::Ident(i)) if i == "false" => Some(Lit::Bool(false)),
            Some(Tok::Ident(i)) if i == "null" => Some(Lit::Null),
            _ => None,
        }
        .inspect(|_| self.pos += 1))
    }

    fn field(&mut self) -> Result<&'static Field, ExprError> {
        match self.peek().cloned() {
            Some(Tok::Ident(name)) => match self.row.field(&name) {
                Some(f) => {
                    self.pos += 1;
                    Ok(f)
                }
                None => self.fail(format!(
                    "{} has no field `{name}` (fields: {})",
                    self.row.record,
                    self.row.field_names().join(", ")
                )),
            },
            _ => self.fail("expected a field name"),
        }
    }

    fn check(&self, field: &Field, op: CmpOp, lit: &Lit, column: usize) -> Result<(), ExprError> {
        let fail = |message: String| Err(ExprError { message, column });
        let ordered = matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge);
        match (field.ty, lit) {
            (_, Lit::Null) if field.nullable && !ordered => Ok(()),
            (_, Lit::Null) => fail(format!("`{}` is never null here", field.name)),
            (FieldType::Num | FieldType::Int, Lit::Num(_)) => Ok(()),
            (FieldType::Str, Lit::Str(_)) | (FieldType::Bool, Lit::Bool(_)) if !ordered => Ok(()),
            (FieldType::Enum(symbols), Lit::Str(s)) if !ordered => {
                let symbols = symbols.get();
                if symbols.contains(&s.as_str()) {
                    Ok(())
                } else {
                    fail(format!(
                        "`{}` has no symbol {s:?} (symbols: {})",
                        field.name,
                        symbols.join(", ")
                    ))
                }
            }
            _ => fail(format!(
                "cannot compare `{}` ({:?}) with {lit:?} using {op:?}",
                field.name, field.ty
            )),
        }
    }

    /// Turns a string literal compared with an enum field into its symbol-table entry.
    fn resolve(field: &Field, lit: Lit) -> Lit {
        match (field.ty, &lit) {
            (FieldType::Enum(symbols), Lit::Str(s)) => symbols
                .get()
                .iter()
                .find(|sym| **sym == s.as_str())
                .map_or(lit, |sym| Lit::Sym(sym)),
            _ => lit,
        }
    }

    fn op(&mut self) -> Option<CmpOp> {
        let op = match self.peek() {
            Some(Tok::Op("==")) => CmpOp::Eq,
            Some(Tok::Op("!=")) => CmpOp::Ne,
            Some(Tok::Op("<")) => CmpOp::Lt,
            Some(Tok::Op("<=")) => CmpOp::Le,
            Some(Tok::Op(">")) => CmpOp::Gt,
            Some(Tok::Op(">=")) => CmpOp::Ge,
            _ => return None,
        };
        self.pos += 1;
        Some(op)
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        // literal op field
        let lit_column = self.column();
        if let Some(lit) = self.literal()? {
            let Some(op) = self.op() else {
                return self.fail("expected a comparison after a literal");
            };
            let field = self.field()?;
            let op = op.flip();
            self.check(field, op, &lit, lit_column)?;
            return Ok(Expr::Cmp(field.get, op, Self::resolve(field, lit)));
        }
        let field = self.field()?;
        if let Some(op) = self.op() {
            let lit_column = self.column();
            let Some(lit) = self.literal()? else {
                return self.fail("expected a literal (comparing two fields is not supported)");
            };
            self.check(field, op, &lit, lit_column)?;
            return Ok(Expr::Cmp(field.get, op, Self::resolve(field, lit)));
        }
        if matches!(self.peek(), Some(Tok::Ident(i)) if i == "in") {
            self.pos += 1;
            if self.next() != Some(Tok::LBracket) {
                self.pos -= 1;
                return self.fail("expected `[` after `in`");
            }
            let mut lits = Vec::new();
            while self.peek() != Some(&Tok::RBracket) {
                let lit_column = self.column();
                let Some(lit) = self.literal()? else {
                    return self.fail("expected a literal in the list");
                };
                self.check(field, CmpOp::Eq, &lit, lit_column)?;
                lits.push(Self::resolve(field, lit));
                match self.peek() {
                    Some(Tok::Comma) => self.pos += 1,
                    Some(Tok::RBracket) => {}
                    _ => return self.fail("expected `,` or `]`"),
                }
            }
            self.pos += 1;
            return Ok(Expr::In(field.get, lits));
        }
        if matches!(field.ty, FieldType::Bool) {
            return Ok(Expr::Flag(field.get));
        }
        self.fail(format!(
            "`{}` is not a boolean: compare it with something",
            field.name
        ))
    }
}

/// Compiles `src` against the fields of a record's catalog row. An empty filter is always true.
pub fn compile(src: &str, row: &Row) -> Result<Expr, ExprError> {
    let toks = lex(src)?;
    if toks.is_empty() {
        return Ok(Expr::True);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        row,
        src,
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return p.fail("unexpected text after the expression");
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::event::*;

    fn row(kind: EventKind) -> Row {
        Catalog::builtin().row(kind).unwrap()
    }

    fn txn(method: PaymentMethod, amount: i64, merchant: Option<&str>) -> Event {
        Event::Transaction(TransactionEvent {
            event_id: "e".into(),
            customer_id: "c".into(),
            event_time: 1,
            account_id: "a".into(),
            txn_type: TxnType::CardPayment,
            amount_minor: amount,
            currency: "EUR".into(),
            payment_method: method,
            merchant_category: merchant.map(Into::into),
            channel: TxnChannel::Pos,
            country: "DE".into(),
            balance_after_minor: None,
        })
    }

    #[test]
    fn evaluates_cel_subset() {
        let k = &row(EventKind::Transaction);
        let e = txn(PaymentMethod::DebitCard, 5000, Some("TRAVEL"));
        let t = |src: &str| compile(src, k).unwrap().matches(&e);
        assert!(t(""));
        assert!(t(
            r#"txn_type == "CARD_PAYMENT" && payment_method == 'DEBIT_CARD'"#
        ));
        assert!(t("amount_minor >= 5000 && !(amount_minor > 5000)"));
        assert!(t("1000 < amount_minor"));
        assert!(t(
            r#"payment_method in ["CREDIT_CARD", "DEBIT_CARD"] || amount_minor < 0"#
        ));
        assert!(t(
            r#"merchant_category == "TRAVEL" && balance_after_minor == null"#
        ));
        assert!(!t("balance_after_minor > 0"), "null compares false");
        assert!(t(r#"merchant_category != null && country != "GB""#));
    }

    #[test]
    fn errors_name_the_problem_and_the_column() {
        let k = &row(EventKind::Transaction);
        let e = compile(r#"txn_type == "CARD_PAYMNT""#, k).unwrap_err();
        assert!(
            e.message.contains("CARD_PAYMNT") && e.message.contains("CARD_PAYMENT"),
            "{e}"
        );
        assert_eq!(e.column, 13);
        let e = compile("amount > 3", k).unwrap_err();
        assert!(e.message.contains("no field `amount`"), "{e}");
        assert_eq!(e.column, 1);
        assert!(compile("amount_minor > 'x'", k).is_err());
        assert!(compile("amount_minor >", k).is_err());
        assert!(compile("(amount_minor > 1", k).is_err());
        assert!(compile("amount_minor > 1 amount_minor", k).is_err());
        assert!(compile("country", k).is_err());
        assert!(compile("country > 'A'", k).is_err());
        let social = compile(
            "mentions_bank && sentiment <= -0.3",
            &row(EventKind::Social),
        )
        .unwrap();
        assert!(format!("{social:?}").contains("flag"));
    }
}
