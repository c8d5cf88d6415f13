//! A bound on the JavaScript that enums make when types are stripped. oxc folds enum members
//! to constants (`B = A + A` becomes the doubled string), writes each member's value out, and
//! replaces every use of a `const enum` member with its value: 26 members each doubling the
//! last, under 500 bytes of TypeScript, made 1.6 GB before any limit applied. So, before the
//! transform, the text enums could make is bounded from above, member by member and use by use,
//! and a handler past [`MAX_ENUM_TEXT`] is refused.

use std::collections::HashMap;

use oxc_ast::ast::{
    ComputedMemberExpression, Expression, Program, StaticMemberExpression, TSEnumDeclaration, TSEnumMemberName,
};
use oxc_ast_visit::{Visit, walk};

/// Bytes of enum values (members and uses of them) a handler may make.
pub const MAX_ENUM_TEXT: u64 = 1 << 20;

/// The longest text of a number.
const NUMBER: u64 = 24;

/// Where the enums of `program` go past [`MAX_ENUM_TEXT`] (an offset in the parsed text), and
/// the bound there.
pub fn too_large(program: &Program<'_>) -> Option<(u32, u64)> {
    let mut bound = EnumText::default();
    bound.visit_program(program);
    bound.counting_uses = true;
    bound.visit_program(program);
    bound.over
}

/// The enums' members (the largest text of any member of that name) and the text so far.
#[derive(Default)]
struct EnumText {
    members: HashMap<String, u64>,
    counting_uses: bool,
    total: u64,
    over: Option<(u32, u64)>,
}

impl EnumText {
    fn add(&mut self, bytes: u64, at: u32) {
        self.total = self.total.saturating_add(bytes);
        if self.total > MAX_ENUM_TEXT && self.over.is_none() {
            self.over = Some((at, self.total));
        }
    }

    /// The longest text `expression` can fold to: strings and the members it names added up
    /// (every operator at most concatenates), anything else a number.
    fn bound(&self, expression: &Expression<'_>) -> u64 {
        let member = |name: &str| self.members.get(name).copied().unwrap_or(NUMBER);
        match expression {
            Expression::StringLiteral(string) => string.value.len() as u64,
            Expression::TemplateLiteral(template) => {
                let quasis = template.quasis.iter().map(|quasi| quasi.value.raw.len() as u64);
                let parts = template.expressions.iter().map(|part| self.bound(part));
                quasis.chain(parts).fold(0, u64::saturating_add)
            }
            Expression::Identifier(identifier) => member(&identifier.name),
            Expression::StaticMemberExpression(access) => member(&access.property.name),
            Expression::ComputedMemberExpression(access) => match &access.expression {
                Expression::StringLiteral(key) => member(&key.value),
                _ => NUMBER,
            },
            Expression::BinaryExpression(binary) => self.bound(&binary.left).saturating_add(self.bound(&binary.right)),
            Expression::ParenthesizedExpression(inner) => self.bound(&inner.expression),
            Expression::UnaryExpression(unary) => self.bound(&unary.argument).max(NUMBER),
            _ => NUMBER,
        }
    }
}

impl<'a> Visit<'a> for EnumText {
    fn visit_ts_enum_declaration(&mut self, declaration: &TSEnumDeclaration<'a>) {
        if self.counting_uses {
            return;
        }
        for member in &declaration.body.members {
            let bytes = member.initializer.as_ref().map_or(NUMBER, |initializer| self.bound(initializer));
            let name = match &member.id {
                TSEnumMemberName::Identifier(identifier) => identifier.name.as_str(),
                TSEnumMemberName::String(name) | TSEnumMemberName::ComputedString(name) => name.value.as_str(),
                TSEnumMemberName::ComputedTemplateString(_) => "",
            };
            let largest = self.members.entry(name.to_owned()).or_default();
            *largest = (*largest).max(bytes);
            self.add(bytes, member.span.start);
        }
    }

    fn visit_static_member_expression(&mut self, access: &StaticMemberExpression<'a>) {
        if self.counting_uses
            && let Some(&bytes) = self.members.get(access.property.name.as_str())
        {
            self.add(bytes, access.span.start);
        }
        walk::walk_static_member_expression(self, access);
    }

    fn visit_computed_member_expression(&mut self, access: &ComputedMemberExpression<'a>) {
        if self.counting_uses
            && let Expression::StringLiteral(key) = &access.expression
            && let Some(&bytes) = self.members.get(key.value.as_str())
        {
            self.add(bytes, access.span.start);
        }
        walk::walk_computed_member_expression(self, access);
    }
}
