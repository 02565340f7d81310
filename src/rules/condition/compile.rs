//! From the `cel` crate's AST to a typed [`Node`] tree for one trigger kind: names resolved to
//! readers, types checked, and everything outside the supported subset rejected with its position.

use super::eval::{feature_cmp, Arith, Cmp, Lit, Node, Rel, StrTest};
use super::messages::{check_symbol, display_name, line_column, unknown_feature};
use super::roots::{self, ProfileField, Ty};
use super::ConditionError;
use crate::event::EventKind;
use crate::features::FeatureSet;
use cel::common::ast::{operators as op, CallExpr, Expr, IdedExpr, LiteralValue, SourceInfo};

/// Compiles one parsed condition for one trigger kind.
pub(crate) struct Compiler<'c> {
    pub kind: EventKind,
    pub features: &'c FeatureSet,
    pub info: &'c SourceInfo,
    /// Feature slots read so far.
    pub slots: Vec<usize>,
    /// Errors found beside the one a failed compile returns (see [`Compiler::both`]).
    pub errors: Vec<ConditionError>,
}

type Out = Result<(Node, Ty), ConditionError>;

const ROOTS: &str = "conditions read `event.<field>`, `features.<name>` and `profile.<field>`";

impl Compiler<'_> {
    /// An error at the node `id`.
    pub(crate) fn err(&self, id: u64, message: impl Into<String>) -> ConditionError {
        let (line, column) = self
            .info
            .offset_for(id)
            .map_or((1, 1), |(start, _)| line_column(&self.info.source, start));
        ConditionError {
            line,
            column,
            message: message.into(),
        }
    }

    /// Compiles `e`, which must be boolean: the whole condition.
    pub(crate) fn condition(&mut self, e: &IdedExpr) -> Result<Node, ConditionError> {
        let (node, ty) = self.expr(e)?;
        if ty != Ty::Bool {
            return Err(self.err(
                e.id,
                format!("a condition must be a boolean, this is a {}", ty.name()),
            ));
        }
        Ok(node)
    }

    /// Both operands, or an error. When both fail, the first error is kept in `self.errors` and
    /// the second returned, so an author sees the problems of every operand in one pass, not
    /// only the leftmost (`features.a > 1 && features.b > 2` with two unknown names: both).
    fn both<A, B>(
        &mut self,
        a: Result<A, ConditionError>,
        b: Result<B, ConditionError>,
    ) -> Result<(A, B), ConditionError> {
        match (a, b) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(first), Err(second)) => {
                self.errors.push(first);
                Err(second)
            }
        }
    }

    fn boolean(&mut self, e: &IdedExpr, what: &str) -> Result<Box<Node>, ConditionError> {
        let (node, ty) = self.expr(e)?;
        if ty != Ty::Bool {
            return Err(self.err(
                e.id,
                format!("{what} needs a boolean, found a {}", ty.name()),
            ));
        }
        Ok(Box::new(node))
    }

    fn expr(&mut self, e: &IdedExpr) -> Out {
        match &e.expr {
            Expr::Literal(l) => {
                let lit = literal(l).ok_or_else(|| self.err(e.id, "bytes are not supported"))?;
                let ty = lit_ty(&lit);
                Ok((Node::Lit(lit), ty))
            }
            Expr::Ident(name) => Err(self.err(
                e.id,
                match name.as_str() {
                    "event" | "features" | "profile" => {
                        format!(
                            "`{name}` is not a value on its own: select a field, `{name}.<name>`"
                        )
                    }
                    _ => format!("unknown name `{name}`: {ROOTS}"),
                },
            )),
            Expr::Select(sel) => {
                let Expr::Ident(root) = &sel.operand.expr else {
                    return Err(self.err(
                        e.id,
                        format!(
                            "`.{}` selects from something other than a root: {ROOTS}",
                            sel.field
                        ),
                    ));
                };
                // Errors point at the root, where the name starts.
                self.select(sel.operand.id, root, &sel.field, sel.test)
            }
            Expr::Call(call) => self.call(e.id, call),
            Expr::List(_) => Err(self.err(e.id, "a list is only supported on the right of `in`")),
            Expr::Map(_) | Expr::Struct(_) => {
                Err(self.err(e.id, "map and message literals are not supported"))
            }
            Expr::Comprehension(_) => Err(self.err(
                e.id,
                "macros over lists (all, exists, exists_one, map, filter) are not supported",
            )),
            Expr::Unspecified => Err(self.err(e.id, "incomplete expression")),
        }
    }

    /// `root.field`, or `has(root.field)` when `test`.
    fn select(&mut self, id: u64, root: &str, field: &str, test: bool) -> Out {
        match root {
            "event" => {
                let catalog = self.features.catalog();
                let (read, ty) = catalog
                    .row(self.kind)
                    .ok_or_else(|| format!("{:?} is not declared in this configuration", self.kind))
                    .and_then(|row| roots::event_field(&row, field))
                    .map_err(|m| self.err(id, m))?;
                Ok(if test {
                    (Node::HasEvent(read), Ty::Bool)
                } else {
                    (Node::Event(read), ty)
                })
            }
            "features" => {
                let Some(slot) = self.features.slot(field) else {
                    return Err(self.err(id, unknown_feature(self.features, field)));
                };
                if !self.slots.contains(&slot) {
                    self.slots.push(slot);
                }
                let text = self.features.defs()[slot].is_text();
                Ok(match (test, text) {
                    (true, false) => (Node::HasFeature(slot), Ty::Bool),
                    (true, true) => (Node::HasFeatureText(slot), Ty::Bool),
                    (false, false) => (Node::Feature(slot), Ty::Double),
                    (false, true) => (Node::FeatureText(slot), Ty::Str(None)),
                })
            }
            "profile" => {
                let f = ProfileField::find(field).map_err(|m| self.err(id, m))?;
                Ok(if test {
                    (Node::HasProfile(f), Ty::Bool)
                } else {
                    (Node::Profile(f), f.ty())
                })
            }
            _ => Err(self.err(id, format!("unknown root `{root}`: {ROOTS}"))),
        }
    }

    fn call(&mut self, id: u64, call: &CallExpr) -> Out {
        let name = call.func_name.as_str();
        let args = &call.args;
        match (name, &call.target, args.len()) {
            (op::LOGICAL_AND | op::LOGICAL_OR, None, 2) => {
                let what = if name == op::LOGICAL_AND {
                    "`&&`"
                } else {
                    "`||`"
                };
                let a = self.boolean(&args[0], what);
                let b = self.boolean(&args[1], what);
                let (a, b) = self.both(a, b)?;
                let node = if name == op::LOGICAL_AND {
                    Node::And(a, b)
                } else {
                    Node::Or(a, b)
                };
                Ok((node, Ty::Bool))
            }
            (op::LOGICAL_NOT, None, 1) => Ok((Node::Not(self.boolean(&args[0], "`!`")?), Ty::Bool)),
            (op::CONDITIONAL, None, 3) => {
                let c = self.boolean(&args[0], "the condition of `?:`");
                let a = self.expr(&args[1]);
                let b = self.expr(&args[2]);
                let branches = self.both(a, b);
                let (c, ((a, ta), (b, tb))) = self.both(c, branches)?;
                let ty = match (ta, tb) {
                    (x, y) if x == y => x,
                    (Ty::Str(_), Ty::Str(_)) => Ty::Str(None),
                    _ => {
                        return Err(self.err(
                            id,
                            format!(
                                "both branches of `?:` must have one type, found {} and {}",
                                ta.name(),
                                tb.name()
                            ),
                        ))
                    }
                };
                if ty == Ty::Channels {
                    return Err(self.err(
                        id,
                        "`profile.contact_channels` is only supported on the right of `in`",
                    ));
                }
                Ok((Node::Cond(c, Box::new(a), Box::new(b)), ty))
            }
            (op::EQUALS | op::NOT_EQUALS, None, 2) => {
                let (a, b) = self.equatable(id, &args[0], &args[1])?;
                let cmp = if name == op::EQUALS { Cmp::Eq } else { Cmp::Ne };
                let node = match feature_cmp(&a, &b, cmp) {
                    Some(fast) => fast,
                    None if cmp == Cmp::Eq => Node::Eq(a, b),
                    None => Node::Ne(a, b),
                };
                Ok((node, Ty::Bool))
            }
            (op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS, None, 2) => {
                let rel = match name {
                    op::LESS => Rel::Lt,
                    op::LESS_EQUALS => Rel::Le,
                    op::GREATER => Rel::Gt,
                    _ => Rel::Ge,
                };
                let (a, b) = (self.value(&args[0]), self.value(&args[1]));
                let ((a, ta), (b, tb)) = self.both(a, b)?;
                let orderable = (ta.is_num() && tb.is_num())
                    || (ta.is_str() && tb.is_str())
                    || (ta == Ty::Bool && tb == Ty::Bool);
                if !orderable {
                    return Err(self.err(
                        id,
                        format!("cannot order a {} against a {}", ta.name(), tb.name()),
                    ));
                }
                let node = feature_cmp(&a, &b, Cmp::Rel(rel))
                    .unwrap_or_else(|| Node::Rel(rel, Box::new(a), Box::new(b)));
                Ok((node, Ty::Bool))
            }
            (op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO, None, 2) => {
                let arith = match name {
                    op::ADD => Arith::Add,
                    op::SUBSTRACT => Arith::Sub,
                    op::MULTIPLY => Arith::Mul,
                    op::DIVIDE => Arith::Div,
                    _ => Arith::Rem,
                };
                let (a, b) = (self.value(&args[0]), self.value(&args[1]));
                let ((a, ta), (b, tb)) = self.both(a, b)?;
                if !ta.is_num() || ta != tb {
                    return Err(self.err(
                        id,
                        format!(
                            "arithmetic needs two numbers of one type (CEL does not mix int, uint \
                             and double: convert with double() or int(), or write 1.0 for a \
                             double), found {} and {}",
                            ta.name(),
                            tb.name()
                        ),
                    ));
                }
                if arith == Arith::Rem && ta == Ty::Double {
                    return Err(self.err(id, "`%` is not defined on doubles"));
                }
                Ok((Node::Arith(arith, Box::new(a), Box::new(b)), ta))
            }
            (op::NEGATE, None, 1) => {
                let (a, ta) = self.value(&args[0])?;
                if !matches!(ta, Ty::Int | Ty::Double) {
                    return Err(self.err(id, format!("cannot negate a {}", ta.name())));
                }
                Ok((Node::Neg(Box::new(a)), ta))
            }
            (op::IN, None, 2) => self.membership(id, &args[0], &args[1]),
            ("size", None, 1) => self.size(id, &args[0]),
            ("size", Some(t), 0) => self.size(id, t),
            ("startsWith" | "endsWith" | "contains", Some(t), 1) => {
                let test = match name {
                    "startsWith" => StrTest::StartsWith,
                    "endsWith" => StrTest::EndsWith,
                    _ => StrTest::Contains,
                };
                let (a, b) = (self.value(t), self.value(&args[0]));
                let ((a, ta), (b, tb)) = self.both(a, b)?;
                if !ta.is_str() || !tb.is_str() {
                    return Err(self.err(
                        id,
                        format!(
                            "`{name}` needs strings, found {} and {}",
                            ta.name(),
                            tb.name()
                        ),
                    ));
                }
                Ok((Node::StrTest(test, Box::new(a), Box::new(b)), Ty::Bool))
            }
            ("double" | "int", None, 1) => {
                let (a, ta) = self.value(&args[0])?;
                if !ta.is_num() {
                    return Err(self.err(
                        id,
                        format!("`{name}()` converts numbers only, found a {}", ta.name()),
                    ));
                }
                Ok(if name == "double" {
                    (Node::ToDouble(Box::new(a)), Ty::Double)
                } else {
                    (Node::ToInt(Box::new(a)), Ty::Int)
                })
            }
            _ => Err(self.err(
                id,
                format!(
                    "`{}` is not supported here; supported: literals, event/features/profile \
                     fields, has(), && || ! ?:, == != < <= > >=, + - * / %, in, size(), \
                     startsWith(), endsWith(), contains(), double(), int()",
                    display_name(name)
                ),
            )),
        }
    }

    /// An operand that must be a plain value (not the channel list).
    fn value(&mut self, e: &IdedExpr) -> Out {
        let (node, ty) = self.expr(e)?;
        if ty == Ty::Channels {
            return Err(self.err(
                e.id,
                "`profile.contact_channels` is only supported on the right of `in`",
            ));
        }
        Ok((node, ty))
    }

    fn equatable(
        &mut self,
        id: u64,
        a: &IdedExpr,
        b: &IdedExpr,
    ) -> Result<(Box<Node>, Box<Node>), ConditionError> {
        let (na, nb) = (self.value(a), self.value(b));
        let ((na, ta), (nb, tb)) = self.both(na, nb)?;
        let comparable = (ta.is_num() && tb.is_num())
            || (ta.is_str() && tb.is_str())
            || ta == tb
            || ta == Ty::Null
            || tb == Ty::Null;
        if !comparable {
            return Err(self.err(
                id,
                format!(
                    "comparing a {} with a {} is always false",
                    ta.name(),
                    tb.name()
                ),
            ));
        }
        self.check_symbol(ta, &nb, b.id)?;
        self.check_symbol(tb, &na, a.id)?;
        Ok((Box::new(na), Box::new(nb)))
    }

    /// A string literal compared with an enum must be one of its symbols.
    fn check_symbol(&self, ty: Ty, node: &Node, id: u64) -> Result<(), ConditionError> {
        if let (Ty::Str(Some(symbols)), Node::Lit(Lit::Str(s))) = (ty, node) {
            check_symbol(symbols, s).map_err(|m| self.err(id, m))?;
        }
        Ok(())
    }

    fn membership(&mut self, id: u64, x: &IdedExpr, list: &IdedExpr) -> Out {
        let (nx, tx) = self.value(x)?;
        match &list.expr {
            Expr::List(l) => {
                let mut lits = Vec::with_capacity(l.elements.len());
                for el in &l.elements {
                    let Expr::Literal(lv) = &el.expr else {
                        return Err(
                            self.err(el.id, "the elements of an `in` list must be literals")
                        );
                    };
                    let lit =
                        literal(lv).ok_or_else(|| self.err(el.id, "bytes are not supported"))?;
                    let te = lit_ty(&lit);
                    let comparable = (tx.is_num() && te.is_num())
                        || (tx.is_str() && te.is_str())
                        || tx == te
                        || te == Ty::Null;
                    if !comparable {
                        return Err(self.err(
                            el.id,
                            format!("a {} is never in a list of {}", tx.name(), te.name()),
                        ));
                    }
                    let el_node = Node::Lit(lit);
                    self.check_symbol(tx, &el_node, el.id)?;
                    if let Node::Lit(lit) = el_node {
                        lits.push(lit);
                    }
                }
                Ok((
                    Node::InList(Box::new(nx), lits.into_boxed_slice()),
                    Ty::Bool,
                ))
            }
            _ => {
                let (_, tl) = self.expr(list)?;
                if tl != Ty::Channels {
                    return Err(self.err(
                        id,
                        "`in` needs a list literal or `profile.contact_channels` on its right",
                    ));
                }
                if !tx.is_str() {
                    return Err(self.err(
                        x.id,
                        format!("the contact channels are strings, found a {}", tx.name()),
                    ));
                }
                if let Node::Lit(Lit::Str(s)) = &nx {
                    check_symbol(roots::channel_symbols(), s).map_err(|m| self.err(x.id, m))?;
                }
                Ok((Node::InChannels(Box::new(nx)), Ty::Bool))
            }
        }
    }

    fn size(&mut self, id: u64, e: &IdedExpr) -> Out {
        let (n, t) = self.value(e)?;
        if !t.is_str() {
            return Err(self.err(
                id,
                format!("`size` is supported on strings only, found a {}", t.name()),
            ));
        }
        Ok((Node::Size(Box::new(n)), Ty::Int))
    }
}

/// The node of a literal, or `None` for bytes.
fn literal(l: &LiteralValue) -> Option<Lit> {
    Some(match l {
        LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
        LiteralValue::Int(i) => Lit::Int(*i.inner()),
        LiteralValue::UInt(u) => Lit::UInt(*u.inner()),
        LiteralValue::Double(d) => Lit::Double(*d.inner()),
        LiteralValue::String(s) => Lit::Str(s.inner().into()),
        LiteralValue::Null => Lit::Null,
        LiteralValue::Bytes(_) => return None,
    })
}

fn lit_ty(l: &Lit) -> Ty {
    match l {
        Lit::Bool(_) => Ty::Bool,
        Lit::Int(_) => Ty::Int,
        Lit::UInt(_) => Ty::UInt,
        Lit::Double(_) => Ty::Double,
        Lit::Str(_) => Ty::Str(None),
        Lit::Null => Ty::Null,
    }
}
