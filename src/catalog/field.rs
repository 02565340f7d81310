//! A field of an input record, by name, for feature filters, aggregated values and rule
//! conditions: resolved once when a definition is compiled, read per event through a plain
//! function pointer (built-in records, [`super::builtin`]) or a slot index (sources declared in
//! configuration, whose tables are built when the [`super::Catalog`] is).

use crate::event::*;

/// A field's value in one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    /// Absent (a null union branch).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (ints, longs and doubles all read as f64).
    Num(f64),
    /// A string.
    Str(&'a str),
    /// An enum symbol: always an element of the enum's `symbols()` table.
    Sym(&'static str),
}

/// What a field holds, for checking expressions when they are compiled.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// A string.
    Str,
    /// An enum, with its symbol table.
    Enum(Symbols),
    /// A number. Built-in records mark every number so (rules read their integers exactly
    /// through their own table); for declared sources, a `float` or `double`.
    Num,
    /// An `int` or `long` of a declared source (timestamps included); reads as a number in
    /// feature filters and as an integer in rules.
    Int,
    /// A boolean.
    Bool,
}

/// The symbol table of an enum field: one table per enum, so equal symbols share an address
/// and filters compare them by address.
#[derive(Clone, Copy)]
pub enum Symbols {
    /// A built-in enum's table (`symbols()` of the types in [`crate::event`]).
    Builtin(fn() -> &'static [&'static str]),
    /// A declared source's enum, built once when the source is registered.
    Declared(&'static [&'static str]),
}

impl Symbols {
    /// The symbols, in schema order.
    pub fn get(self) -> &'static [&'static str] {
        match self {
            Symbols::Builtin(table) => table(),
            Symbols::Declared(table) => table,
        }
    }
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.get()).finish()
    }
}

/// Reads one field of an event.
#[derive(Debug, Clone, Copy)]
pub enum Accessor {
    /// A built-in record's field, through a function of its typed struct.
    Typed(for<'a> fn(&'a Event) -> Val<'a>),
    /// A declared source's field, by its slot in [`DeclaredEvent::values`].
    Slot(u16),
}

impl Accessor {
    /// The field's value in `event` (`Null` when the event is of another record type).
    #[inline]
    pub fn read(self, event: &Event) -> Val<'_> {
        match self {
            Accessor::Typed(get) => get(event),
            Accessor::Slot(slot) => match event {
                Event::Declared(e) => match e.values.get(usize::from(slot)) {
                    Some(Value::Bool(b)) => Val::Bool(*b),
                    Some(Value::Int(n)) => Val::Num(*n as f64),
                    Some(Value::Double(n)) => Val::Num(*n),
                    Some(Value::Str(s)) => Val::Str(s),
                    Some(Value::Sym(s)) => Val::Sym(s),
                    Some(Value::Null) | None => Val::Null,
                },
                _ => Val::Null,
            },
        }
    }

    /// An integer field's exact value (`None` when absent or not an integer slot).
    pub fn int(self, event: &Event) -> Option<i64> {
        match (self, event) {
            (Accessor::Slot(slot), Event::Declared(e)) => match e.values.get(usize::from(slot)) {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            },
            _ => None,
        }
    }
}

/// One field of a record type.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Field name, as in the Avro schema.
    pub name: &'static str,
    /// Type of the value.
    pub ty: FieldType,
    /// Whether it may be null.
    pub nullable: bool,
    /// How to read it.
    pub get: Accessor,
}
