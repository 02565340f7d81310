//! Renders a parsed condition back as readable CEL text, with only the parentheses the precedence
//! needs: the "reasons" of a decision (`features.debit_card_spend_30d >= 1500.0`).

use cel::common::ast::{operators as op, Expr, IdedExpr, LiteralValue};
use std::fmt::Write;

/// Precedence levels, loosest first.
const TERNARY: u8 = 0;
const OR: u8 = 1;
const AND: u8 = 2;
const RELATION: u8 = 3;
const ADDITIVE: u8 = 4;
const MULTIPLICATIVE: u8 = 5;
const UNARY: u8 = 6;
const PRIMARY: u8 = 7;

/// The top-level `&&` terms of `e`, left to right.
pub(crate) fn and_terms(e: &IdedExpr) -> Vec<&IdedExpr> {
    let mut out = Vec::new();
    collect_and(e, &mut out);
    out
}

fn collect_and<'e>(e: &'e IdedExpr, out: &mut Vec<&'e IdedExpr>) {
    match &e.expr {
        Expr::Call(c)
            if c.func_name == op::LOGICAL_AND && c.target.is_none() && c.args.len() == 2 =>
        {
            collect_and(&c.args[0], out);
            collect_and(&c.args[1], out);
        }
        _ => out.push(e),
    }
}

/// `e` as CEL text.
pub(crate) fn render(e: &IdedExpr) -> String {
    let mut s = String::new();
    write_expr(&mut s, e, TERNARY);
    s
}

fn binary(name: &str) -> Option<(&'static str, u8)> {
    Some(match name {
        op::LOGICAL_OR => ("||", OR),
        op::LOGICAL_AND => ("&&", AND),
        op::EQUALS => ("==", RELATION),
        op::NOT_EQUALS => ("!=", RELATION),
        op::LESS => ("<", RELATION),
        op::LESS_EQUALS => ("<=", RELATION),
        op::GREATER => (">", RELATION),
        op::GREATER_EQUALS => (">=", RELATION),
        op::IN => ("in", RELATION),
        op::ADD => ("+", ADDITIVE),
        op::SUBSTRACT => ("-", ADDITIVE),
        op::MULTIPLY => ("*", MULTIPLICATIVE),
        op::DIVIDE => ("/", MULTIPLICATIVE),
        op::MODULO => ("%", MULTIPLICATIVE),
        _ => return None,
    })
}

/// The precedence of `e` as written.
fn precedence(e: &IdedExpr) -> u8 {
    match &e.expr {
        Expr::Call(c) if c.target.is_none() => match (c.func_name.as_str(), c.args.len()) {
            (op::CONDITIONAL, 3) => TERNARY,
            (op::LOGICAL_NOT | op::NEGATE, 1) => UNARY,
            (name, 2) => binary(name).map_or(PRIMARY, |(_, p)| p),
            _ => PRIMARY,
        },
        Expr::Literal(LiteralValue::Int(i)) if *i.inner() < 0 => UNARY,
        Expr::Literal(LiteralValue::Double(d)) if d.inner().is_sign_negative() => UNARY,
        _ => PRIMARY,
    }
}

/// Writes `e`, in parentheses when it binds looser than `min`.
fn write_expr(s: &mut String, e: &IdedExpr, min: u8) {
    let p = precedence(e);
    if p < min {
        s.push('(');
        write_bare(s, e);
        s.push(')');
    } else {
        write_bare(s, e);
    }
}

fn write_list(s: &mut String, items: &[IdedExpr]) {
    for (i, a) in items.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        write_expr(s, a, TERNARY);
    }
}

fn write_bare(s: &mut String, e: &IdedExpr) {
    match &e.expr {
        Expr::Literal(l) => write_literal(s, l),
        Expr::Ident(name) => s.push_str(name),
        Expr::Select(sel) => {
            if sel.test {
                s.push_str("has(");
            }
            write_expr(s, &sel.operand, PRIMARY);
            s.push('.');
            s.push_str(&sel.field);
            if sel.test {
                s.push(')');
            }
        }
        Expr::List(l) => {
            s.push('[');
            write_list(s, &l.elements);
            s.push(']');
        }
        Expr::Call(c) => {
            let name = c.func_name.as_str();
            match (&c.target, c.args.as_slice()) {
                (None, [cond, a, b]) if name == op::CONDITIONAL => {
                    write_expr(s, cond, OR);
                    s.push_str(" ? ");
                    write_expr(s, a, OR);
                    s.push_str(" : ");
                    write_expr(s, b, TERNARY);
                }
                (None, [a]) if name == op::LOGICAL_NOT || name == op::NEGATE => {
                    s.push(if name == op::LOGICAL_NOT { '!' } else { '-' });
                    write_expr(s, a, UNARY);
                }
                (None, [a, b]) if binary(name).is_some() => {
                    let (sym, p) = binary(name).unwrap_or(("?", PRIMARY));
                    write_expr(s, a, p);
                    let _ = write!(s, " {sym} ");
                    // Left-associative: a right operand at the same level needs parentheses,
                    // except for && and ||, which are associative.
                    let right = if p == AND || p == OR { p } else { p + 1 };
                    write_expr(s, b, right);
                }
                (Some(t), args) => {
                    write_expr(s, t, PRIMARY);
                    let _ = write!(s, ".{name}(");
                    write_list(s, args);
                    s.push(')');
                }
                (None, args) => {
                    let _ = write!(s, "{name}(");
                    write_list(s, args);
                    s.push(')');
                }
            }
        }
        // Not in the supported subset, so never in a compiled condition.
        Expr::Map(_) | Expr::Struct(_) | Expr::Comprehension(_) | Expr::Unspecified => s.push('…'),
    }
}

fn write_literal(s: &mut String, l: &LiteralValue) {
    match l {
        LiteralValue::Boolean(b) => {
            let _ = write!(s, "{}", b.inner());
        }
        LiteralValue::Int(i) => {
            let _ = write!(s, "{}", i.inner());
        }
        LiteralValue::UInt(u) => {
            let _ = write!(s, "{}u", u.inner());
        }
        // Debug keeps a decimal point or an exponent, so the text reads back as a double.
        LiteralValue::Double(d) => {
            let _ = write!(s, "{:?}", d.inner());
        }
        LiteralValue::Null => s.push_str("null"),
        LiteralValue::String(t) => {
            s.push('\'');
            for c in t.inner().chars() {
                match c {
                    '\'' => s.push_str("\\'"),
                    '\\' => s.push_str("\\\\"),
                    '\n' => s.push_str("\\n"),
                    '\r' => s.push_str("\\r"),
                    '\t' => s.push_str("\\t"),
                    c if c.is_control() => {
                        let _ = write!(s, "\\u{:04x}", u32::from(c));
                    }
                    c => s.push(c),
                }
            }
            s.push('\'');
        }
        LiteralValue::Bytes(_) => s.push_str("b'…'"),
    }
}
