//! Static inference of the capability tokens a handler needs.
//!
//! A handler is the body of an async function whose parameters are the handler API
//! (`$state`, `$args`, `$scope`, `$emit`, `$view`, `$ext`, `$log`). We parse it exactly as the
//! guest runs it, wrapped in [`HANDLER_PREFIX`] / [`HANDLER_SUFFIX`], so that `return`, `await`
//! and the API names mean here what they mean at run time; locations are then mapped back to
//! the handler's own source.
//!
//! Inference is a suggestion, never a grant: the host checks every access at run time. So it
//! errs on the side of proposing too little. Anything it cannot resolve to a literal resource
//! (a computed key, an alias of an API object, a literal `*`) becomes a [`Warning`] and no
//! token, and it never proposes a wildcard.

use std::borrow::Cow;
use std::collections::BTreeSet;

use nexus_abi::{HANDLER_PREFIX, HANDLER_SUFFIX};
use oxc_allocator::Allocator;
use oxc_ast::AstKind;
use oxc_ast::ast::{
    Argument, AssignmentExpression, AssignmentOperator, AssignmentPattern, AssignmentTarget, AssignmentTargetProperty,
    BinaryExpression, BinaryOperator, BindingPattern, CallExpression, Decorator, Expression, ForInStatement,
    FormalParameter, FunctionBody, IdentifierReference, MemberExpression, ObjectAssignmentTarget, ObjectPattern,
    Program, PropertyKey, SimpleAssignmentTarget, Statement, UnaryExpression, UnaryOperator, UpdateExpression,
    VariableDeclarator,
};
use oxc_ast_visit::{Visit, walk};
use oxc_parser::{ParseOptions, Parser};
use oxc_span::{GetSpan, SourceType, Span};

use crate::capability::{Capability, Kind};

/// What a handler needs, as far as its source shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inference {
    /// Sorted and deduplicated; never a wildcard.
    pub capabilities: Vec<Capability>,
    /// Accesses that could not be resolved to a token, in source order.
    pub warnings: Vec<Warning>,
}

/// An access inference could not turn into a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub message: String,
    /// 1-based line in the handler's own source.
    pub line: u32,
    /// 1-based column (in characters) in the handler's own source.
    pub column: u32,
}

/// Why a handler could not be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InferenceError {
    /// The handler does not parse as the body of an async function. `line` and `column` are
    /// 1-based, in the handler's own source.
    #[error("syntax error at {line}:{column}: {message}")]
    Syntax { message: String, line: u32, column: u32 },
    /// The handler is larger than [`MAX_SOURCE_BYTES`].
    #[error("the handler is {bytes} bytes; at most {MAX_SOURCE_BYTES} are accepted")]
    TooLarge { bytes: usize },
}

/// Largest handler source accepted (to run, to check, to infer from).
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

/// Infers the capability tokens `source` (a handler body) needs.
///
/// oxc parses and this module walks recursively, so a deeply nested handler would overflow the
/// caller's stack (an abort, not a panic). The analysis therefore runs on a thread whose stack
/// grows with the source: measured worst cases need well under 1 KiB per source byte.
pub fn infer_capabilities(source: &str) -> Result<Inference, InferenceError> {
    on_big_stack(source, infer_on_this_thread)
}

/// Checks that `source` is the body of an async function and nothing more: it parses inside
/// the wrapper the guest compiles it in, and the wrapper holds all of it (a source such as
/// `}); other(); (async function () {` closes the wrapper early and would run code outside
/// the handler function). The engine refuses anything else as a `SYNTAX_ERROR`.
pub fn check_handler_body(source: &str) -> Result<(), InferenceError> {
    on_big_stack(source, |source| parse_body(source, |_, _| ()))
}

/// Runs `analysis` on a thread whose stack grows with the source (oxc parses recursively).
fn on_big_stack<T: Send>(
    source: &str,
    analysis: impl FnOnce(&str) -> Result<T, InferenceError> + Send,
) -> Result<T, InferenceError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(InferenceError::TooLarge { bytes: source.len() });
    }
    let stack_size = (16 << 20) + source.len() * 1024;
    std::thread::scope(|scope| {
        let analysis = std::thread::Builder::new()
            .name("nexus-inference".into())
            .stack_size(stack_size)
            .spawn_scoped(scope, || analysis(source))
            .expect("spawning the inference thread");
        analysis.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Parses `source` as the guest runs it (wrapped in [`HANDLER_PREFIX`] / [`HANDLER_SUFFIX`])
/// and hands the handler's body to `then`.
fn parse_body<T>(
    source: &str,
    then: impl for<'p, 'a> FnOnce(&'p FunctionBody<'a>, Locator<'_>) -> T,
) -> Result<T, InferenceError> {
    let wrapped = format!("{HANDLER_PREFIX}{source}{HANDLER_SUFFIX}");
    let locator = Locator { source, prefix_len: HANDLER_PREFIX.len() };
    let allocator = Allocator::default();
    // Parentheses carry no meaning for inference; dropping them lets `($state).k` match
    // `$state.k` without unwrapping everywhere.
    let options = ParseOptions { preserve_parens: false, ..ParseOptions::default() };
    // The guest evaluates the wrapped handler as a classic (sloppy-mode) script.
    let parsed = Parser::new(&allocator, &wrapped, SourceType::script()).with_options(options).parse();

    if let Some(error) = parsed.diagnostics.errors().next() {
        let offset = error.labels.first().map_or(0, |label| label.offset());
        return Err(locator.syntax_error(error.message.to_string(), offset));
    }
    let body = handler_body(&parsed.program).ok_or_else(|| {
        let offset = parsed.program.body.first().map_or(0, |statement| statement.span().end);
        locator.syntax_error("the handler closes its enclosing function early".to_owned(), offset)
    })?;
    if let Some((offset, message)) = not_handler_code(&body.statements) {
        return Err(locator.syntax_error(message, offset));
    }
    Ok(then(body, locator))
}

/// Why a handler cannot hold an `import` or `export` statement (which the parser takes
/// anywhere, and the guest refuses).
pub const NOT_A_MODULE: &str = "a handler is the body of an async function, not a module: it cannot import or \
                                export; shared code goes in preloaded libraries";

/// Why decorators are refused: QuickJS does not parse them, and nothing rewrites them first.
pub const NO_DECORATORS: &str = "decorators are not handler code: QuickJS does not run them and no transform \
                                 rewrites them";

/// The first statement among a handler's `statements` that parses but is not handler code (an
/// `import` or `export`, a decorator): where it starts, and the message of the syntax error
/// it is.
pub fn not_handler_code(statements: &[Statement<'_>]) -> Option<(u32, String)> {
    // `import fs = require('fs')` (TypeScript) is an import too.
    let imports = |statement: &Statement<'_>| {
        statement.is_module_declaration()
            || matches!(statement, Statement::TSImportEqualsDeclaration(declaration)
                if matches!(declaration.module_reference, oxc_ast::ast::TSModuleReference::ExternalModuleReference(_)))
    };
    if let Some(statement) = statements.iter().find(|statement| imports(statement)) {
        return Some((statement.span().start, format!("an import or export statement ({NOT_A_MODULE})")));
    }
    let mut decorator = FirstDecorator(None);
    statements.iter().for_each(|statement| decorator.visit_statement(statement));
    decorator.0.map(|start| (start, format!("a decorator ({NO_DECORATORS})")))
}

/// Where the first decorator visited starts.
struct FirstDecorator(Option<u32>);

impl<'a> Visit<'a> for FirstDecorator {
    fn visit_decorator(&mut self, decorator: &Decorator<'a>) {
        self.0.get_or_insert(decorator.span.start);
    }
}

fn infer_on_this_thread(source: &str) -> Result<Inference, InferenceError> {
    parse_body(source, |body, locator| {
        let mut inferrer =
            Inferrer { shadows: Shadows::collect(body), locator, capabilities: BTreeSet::new(), warnings: Vec::new() };
        inferrer.visit_function_body(body);
        inferrer.finish()
    })
}

/// The handler's body inside the parsed wrapper, or `None` if the handler escaped it (e.g.
/// `}); other(); (function () {`), in which case part of it would not be the handler at all.
fn handler_body<'p, 'a>(program: &'p Program<'a>) -> Option<&'p FunctionBody<'a>> {
    let [Statement::ExpressionStatement(statement)] = program.body.as_slice() else {
        return None;
    };
    match &statement.expression {
        Expression::FunctionExpression(function) => function.body.as_deref(),
        _ => None,
    }
}

/// Maps offsets in the wrapped source back to lines and columns of the handler's source.
struct Locator<'s> {
    source: &'s str,
    prefix_len: usize,
}

impl Locator<'_> {
    /// 1-based line and column (in characters, lines split on `\n`) of a wrapped offset.
    /// Offsets in the prefix map to the start of the handler, offsets in the suffix to its end
    /// (where an unclosed construct is noticed).
    fn locate(&self, wrapped_offset: u32) -> (u32, u32) {
        let offset = usize::try_from(wrapped_offset)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.prefix_len)
            .min(self.source.len());
        let before = &self.source[..self.source.floor_char_boundary(offset)];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        (saturating_u32(line), saturating_u32(column))
    }

    fn warning(&self, span: Span, message: String) -> Warning {
        let (line, column) = self.locate(span.start);
        Warning { message, line, column }
    }

    fn syntax_error(&self, message: String, wrapped_offset: u32) -> InferenceError {
        let (line, column) = self.locate(wrapped_offset);
        InferenceError::Syntax { message, line, column }
    }
}

fn saturating_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// The API objects whose use needs a capability. (`$args`, `$scope` and `$log` need none.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    State,
    Emit,
    View,
    Ext,
}

impl Api {
    fn from_name(name: &str) -> Option<Api> {
        match name {
            "$state" => Some(Api::State),
            "$emit" => Some(Api::Emit),
            "$view" => Some(Api::View),
            "$ext" => Some(Api::Ext),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Api::State => "$state",
            Api::Emit => "$emit",
            Api::View => "$view",
            Api::Ext => "$ext",
        }
    }
}

/// Names whose local declarations matter: the API objects, and `Object` (whose `keys` /
/// `entries` may be given `$state` without a warning only if it is the real `Object`).
fn is_tracked_name(name: &str) -> bool {
    name == "Object" || Api::from_name(name).is_some()
}

/// Where the handler declares its own bindings for tracked names: a use of such a name inside
/// one of these regions refers to the local binding, not to the API.
///
/// Because the API names are the outermost bindings, "is this use shadowed" is simply "does a
/// region declaring that name contain it". Regions are the declaring scope (block for
/// `let` / `const` / `class`, function for `var`, parameters and function declarations), so
/// hoisting and the temporal dead zone need no special handling. Where the language is subtle
/// (sloppy-mode function declarations in blocks) the larger region is taken: seeing a local
/// where there is the API only makes inference propose less.
struct Shadows<'a> {
    regions: Vec<(&'a str, Span)>,
}

impl<'a> Shadows<'a> {
    fn collect(body: &FunctionBody<'a>) -> Self {
        let mut collector =
            ShadowCollector { regions: Vec::new(), function_scopes: vec![body.span], block_scopes: vec![body.span] };
        collector.visit_function_body(body);
        Shadows { regions: collector.regions }
    }

    fn is_shadowed(&self, name: &str, at: u32) -> bool {
        self.regions.iter().any(|(declared, span)| *declared == name && span.start <= at && at < span.end)
    }
}

/// Pre-pass for [`Shadows`]: follows scopes through `enter_node` / `leave_node` and records
/// each declaration of a tracked name with the region of its scope.
struct ShadowCollector<'a> {
    regions: Vec<(&'a str, Span)>,
    /// Innermost last; `var`, parameters and function declarations bind here.
    function_scopes: Vec<Span>,
    /// Innermost last; `let`, `const` and class declarations bind here.
    block_scopes: Vec<Span>,
}

/// Which scopes a node opens: (block scope, function scope).
fn opened_scopes(kind: &AstKind<'_>) -> (bool, bool) {
    match kind {
        AstKind::Function(_) | AstKind::ArrowFunctionExpression(_) | AstKind::StaticBlock(_) => (true, true),
        AstKind::BlockStatement(_)
        | AstKind::ForStatement(_)
        | AstKind::ForInStatement(_)
        | AstKind::ForOfStatement(_)
        | AstKind::SwitchStatement(_)
        | AstKind::CatchClause(_) => (true, false),
        _ => (false, false),
    }
}

impl<'a> ShadowCollector<'a> {
    fn record(&mut self, name: &'a str, region: Option<Span>) {
        if let Some(region) = region
            && is_tracked_name(name)
        {
            self.regions.push((name, region));
        }
    }

    fn record_pattern(&mut self, pattern: &BindingPattern<'a>, region: Option<Span>) {
        for identifier in pattern.get_binding_identifiers() {
            self.record(identifier.name.as_str(), region);
        }
    }
}

impl<'a> Visit<'a> for ShadowCollector<'a> {
    fn enter_node(&mut self, kind: AstKind<'a>) {
        // A function declaration binds its name in the enclosing scope, before it opens its own.
        if let AstKind::Function(function) = kind
            && function.is_declaration()
            && let Some(id) = &function.id
        {
            self.record(id.name.as_str(), self.function_scopes.last().copied());
        }
        let (block, function) = opened_scopes(&kind);
        if block {
            self.block_scopes.push(kind.span());
        }
        if function {
            self.function_scopes.push(kind.span());
        }
        match kind {
            AstKind::Function(function) if !function.is_declaration() => {
                if let Some(id) = &function.id {
                    self.record(id.name.as_str(), Some(function.span));
                }
            }
            AstKind::Class(class) => {
                if let Some(id) = &class.id {
                    let region =
                        if class.is_declaration() { self.block_scopes.last().copied() } else { Some(class.span) };
                    self.record(id.name.as_str(), region);
                }
            }
            AstKind::FormalParameters(parameters) => {
                let region = self.function_scopes.last().copied();
                for parameter in &parameters.items {
                    self.record_pattern(&parameter.pattern, region);
                }
                if let Some(rest) = &parameters.rest {
                    self.record_pattern(&rest.rest.argument, region);
                }
            }
            AstKind::CatchParameter(parameter) => {
                self.record_pattern(&parameter.pattern, self.block_scopes.last().copied());
            }
            AstKind::VariableDeclaration(declaration) => {
                let region = if declaration.kind.is_var() {
                    self.function_scopes.last().copied()
                } else {
                    self.block_scopes.last().copied()
                };
                for declarator in &declaration.declarations {
                    self.record_pattern(&declarator.id, region);
                }
            }
            _ => {}
        }
    }

    fn leave_node(&mut self, kind: AstKind<'a>) {
        let (block, function) = opened_scopes(&kind);
        if block {
            self.block_scopes.pop();
        }
        if function {
            self.function_scopes.pop();
        }
    }
}

/// A literal resource name: a string, a template without substitutions, or an integer
/// (which JavaScript turns into its decimal string when used as a key). `None` for anything
/// whose value is not known statically, including strings with lone surrogates, which have no
/// faithful UTF-8 form.
fn literal_name<'a>(expression: &Expression<'a>) -> Option<Cow<'a, str>> {
    match expression {
        Expression::StringLiteral(literal) if !literal.lone_surrogates => Some(Cow::Borrowed(literal.value.as_str())),
        Expression::TemplateLiteral(template) => match template.quasis.as_slice() {
            [quasi] if template.expressions.is_empty() && !quasi.lone_surrogates => {
                quasi.value.cooked.map(|cooked| Cow::Borrowed(cooked.as_str()))
            }
            _ => None,
        },
        Expression::NumericLiteral(number) if number.value.fract() == 0.0 && number.value.abs() < 1e15 => {
            // Exact: an integer below 2^53 (and `-0`, a key of `"0"`, becomes `0`).
            Some(Cow::Owned((number.value as i64).to_string()))
        }
        _ => None,
    }
}

/// The name an object pattern / object assignment property reads.
fn property_key_name<'a>(key: &PropertyKey<'a>) -> Option<Cow<'a, str>> {
    match key {
        PropertyKey::StaticIdentifier(identifier) => Some(Cow::Borrowed(identifier.name.as_str())),
        PropertyKey::PrivateIdentifier(_) => None,
        _ => key.as_expression().and_then(literal_name),
    }
}

/// The property of a member access on an API object.
enum Property<'m, 'a> {
    Name(Cow<'a, str>),
    /// A computed key whose value is not known statically.
    Dynamic(&'m Expression<'a>),
}

fn member_property<'m, 'a>(member: &'m MemberExpression<'a>) -> Option<Property<'m, 'a>> {
    match member {
        MemberExpression::StaticMemberExpression(member) => {
            Some(Property::Name(Cow::Borrowed(member.property.name.as_str())))
        }
        MemberExpression::ComputedMemberExpression(member) => {
            Some(literal_name(&member.expression).map_or(Property::Dynamic(&member.expression), Property::Name))
        }
        MemberExpression::PrivateFieldExpression(_) => None,
    }
}

/// What each token kind's resource is called, for warnings.
fn resource_noun(kind: Kind) -> &'static str {
    match kind {
        Kind::StateRead | Kind::StateWrite => "state key",
        Kind::EventsEmit => "event name",
        Kind::ViewUpdate => "component id",
        Kind::Ext => "extension name",
    }
}

/// The inference visitor: walks the handler, turning each recognised API access into a token and
/// each other use of an API object into a warning.
///
/// Recognised patterns handle their API identifier themselves and never walk into it, so any
/// API identifier that reaches [`Visit::visit_identifier_reference`] is an unrecognised use
/// (an alias, an argument, a reassignment) and is warned about there.
struct Inferrer<'a, 's> {
    shadows: Shadows<'a>,
    locator: Locator<'s>,
    capabilities: BTreeSet<Capability>,
    warnings: Vec<Warning>,
}

impl<'a> Inferrer<'a, '_> {
    fn finish(mut self) -> Inference {
        self.warnings.sort_by_key(|warning| (warning.line, warning.column));
        self.warnings.dedup();
        Inference { capabilities: self.capabilities.into_iter().collect(), warnings: self.warnings }
    }

    fn warn(&mut self, span: Span, message: String) {
        self.warnings.push(self.locator.warning(span, message));
    }

    /// Adds a token, unless its resource would not be a plain name: `*` would be the
    /// wildcard and an empty resource is no valid token.
    fn grant(&mut self, kind: Kind, name: &str, span: Span) {
        let noun = resource_noun(kind);
        match name {
            "*" => self.warn(
                span,
                format!("a literal `*` {noun} is not inferred: `{}*` would grant every {noun}", kind.prefix()),
            ),
            "" => self.warn(span, format!("an empty {noun} is not inferred")),
            _ => {
                self.capabilities.insert(Capability::new(kind, name));
            }
        }
    }

    /// The API object `expression` is, if it is one and not shadowed by a local binding.
    fn api(&self, expression: &Expression<'a>) -> Option<Api> {
        match expression {
            Expression::Identifier(identifier) => self.api_reference(identifier),
            _ => None,
        }
    }

    fn api_reference(&self, identifier: &IdentifierReference<'a>) -> Option<Api> {
        let name = identifier.name.as_str();
        Api::from_name(name).filter(|_| !self.shadows.is_shadowed(name, identifier.span.start))
    }

    /// `member` as `<api>.<property>`, if its object is an unshadowed API object.
    fn api_member<'m>(&self, member: &'m MemberExpression<'a>) -> Option<(Api, Property<'m, 'a>)> {
        let api = self.api(member.object())?;
        Some((api, member_property(member)?))
    }

    /// A `$state.k` access of `kinds`; a computed key is warned about and still walked (it
    /// may read state itself).
    fn state_access(&mut self, kinds: &[Kind], property: Property<'_, 'a>, span: Span) {
        match property {
            Property::Name(name) => {
                for &kind in kinds {
                    self.grant(kind, &name, span);
                }
            }
            Property::Dynamic(key) => {
                self.warn(
                    span,
                    "`$state` accessed with a computed key: no state capability is inferred for it".to_owned(),
                );
                self.visit_expression(key);
            }
        }
    }

    /// `$state.k` and friends used as a value; `$ext.name` anywhere.
    fn api_member_read(&mut self, api: Api, property: Property<'_, 'a>, span: Span) {
        match (api, property) {
            (Api::State, property) => self.state_access(&[Kind::StateRead], property, span),
            (Api::Ext, Property::Name(name)) => self.grant(Kind::Ext, &name, span),
            (Api::Ext, Property::Dynamic(key)) => {
                self.warn(
                    span,
                    "`$ext` accessed with a computed extension name: no ext capability is inferred for it".to_owned(),
                );
                self.visit_expression(key);
            }
            (api, property) => {
                self.warn(
                    span,
                    format!(
                        "`{}` member used other than as a direct call: what it is used for cannot be inferred",
                        api.name()
                    ),
                );
                if let Property::Dynamic(key) = property {
                    self.visit_expression(key);
                }
            }
        }
    }

    /// The `index`th argument of `call` as a literal resource of `kind`, or a warning.
    fn literal_argument(&mut self, call: &CallExpression<'a>, index: usize, kind: Kind, what: &str) {
        // After a spread, positions are unknown.
        let spread_before =
            call.arguments.iter().take(index).any(|argument| matches!(argument, Argument::SpreadElement(_)));
        let argument = call.arguments.get(index).filter(|_| !spread_before);
        let literal = argument.and_then(Argument::as_expression).and_then(literal_name);
        match literal {
            Some(name) => self.grant(kind, &name, argument.map_or(call.span, GetSpan::span)),
            None => self.warn(
                argument.map_or(call.span, GetSpan::span),
                format!("{what} without a literal {}: no capability is inferred for it", resource_noun(kind)),
            ),
        }
    }

    /// Calls on the API: `$emit(name, …)`, `$view.update(id, …)` and
    /// `$view.command(type, id, …)`. Returns whether `call`'s callee was handled; the arguments
    /// are left to the caller.
    fn api_call(&mut self, call: &CallExpression<'a>) -> bool {
        if self.api(&call.callee) == Some(Api::Emit) {
            self.literal_argument(call, 0, Kind::EventsEmit, "`$emit` called");
            return true;
        }
        let Some(member) = call.callee.as_member_expression() else {
            return false;
        };
        if let Some((Api::View, property)) = self.api_member(member) {
            match property {
                Property::Name(method) if method == "update" => {
                    self.literal_argument(call, 0, Kind::ViewUpdate, "`$view.update` called");
                }
                Property::Name(method) if method == "command" => {
                    self.literal_argument(call, 1, Kind::ViewUpdate, "`$view.command` called");
                }
                Property::Name(method) => self.warn(
                    member.span(),
                    format!("`$view.{method}` is not a view method (`update`, `command`): nothing is inferred for it"),
                ),
                Property::Dynamic(key) => {
                    self.warn(
                        member.span(),
                        "`$view` method chosen by a computed key: nothing is inferred for it".to_owned(),
                    );
                    self.visit_expression(key);
                }
            }
            return true;
        }
        false
    }

    /// Whether `call` is the real `Object.keys` or `Object.entries`, which may be given
    /// `$state` without a token or a warning: the host lists only the keys the handler may
    /// read anyway.
    fn is_object_keys(&self, call: &CallExpression<'a>) -> bool {
        let Some(member) = call.callee.as_member_expression() else {
            return false;
        };
        matches!(member.object(), Expression::Identifier(object)
            if object.name == "Object" && !self.shadows.is_shadowed("Object", object.span.start))
            && matches!(member.static_property_name(), Some("keys" | "entries"))
    }

    /// `const {a, b: c} = $state`: reads `a` and `b`. A computed key or a rest element reads
    /// what cannot be known, and is warned about. Keys are walked by the caller.
    fn destructured_keys(&mut self, keys: impl Iterator<Item = (Option<Cow<'a, str>>, Span)>, rest: Option<Span>) {
        for (name, span) in keys {
            match name {
                Some(name) => self.grant(Kind::StateRead, &name, span),
                None => self.warn(
                    span,
                    "`$state` destructured with a computed key: no state capability is inferred for it".to_owned(),
                ),
            }
        }
        if let Some(span) = rest {
            self.warn(
                span,
                "`$state` destructured into a rest element: the keys it reads cannot be inferred".to_owned(),
            );
        }
    }

    fn destructured_binding(&mut self, pattern: &ObjectPattern<'a>) {
        let keys = pattern.properties.iter().map(|property| (property_key_name(&property.key), property.key.span()));
        self.destructured_keys(keys, pattern.rest.as_ref().map(|rest| rest.span));
    }

    fn destructured_assignment(&mut self, target: &ObjectAssignmentTarget<'a>) {
        let keys = target.properties.iter().map(|property| match property {
            AssignmentTargetProperty::AssignmentTargetPropertyIdentifier(property) => {
                (Some(Cow::Borrowed(property.binding.name.as_str())), property.binding.span)
            }
            AssignmentTargetProperty::AssignmentTargetPropertyProperty(property) => {
                (property_key_name(&property.name), property.name.span())
            }
        });
        self.destructured_keys(keys, target.rest.as_ref().map(|rest| rest.span));
    }

    /// `{ a, b } = $state` in a declaration, a parameter default or a pattern default: reads
    /// the keys and walks the pattern (its defaults and computed keys) but not `$state`, which
    /// is not aliased here. Returns whether `pattern = init` was such a destructuring.
    fn destructure_state(&mut self, pattern: &BindingPattern<'a>, init: Option<&Expression<'a>>) -> bool {
        let BindingPattern::ObjectPattern(object) = pattern else {
            return false;
        };
        if init.and_then(|init| self.api(init)) != Some(Api::State) {
            return false;
        }
        self.destructured_binding(object);
        self.visit_binding_pattern(pattern);
        true
    }

    /// The `$state` member `target` writes to, if it is one.
    fn state_target<'m>(&self, target: &'m SimpleAssignmentTarget<'a>) -> Option<Property<'m, 'a>> {
        match self.api_member(target.as_member_expression()?)? {
            (Api::State, property) => Some(property),
            _ => None,
        }
    }
}

impl<'a> Visit<'a> for Inferrer<'a, '_> {
    fn visit_identifier_reference(&mut self, identifier: &IdentifierReference<'a>) {
        if let Some(api) = self.api_reference(identifier) {
            self.warn(
                identifier.span,
                format!(
                    "`{}` used as a value (aliased, passed on or reassigned): accesses through it cannot be inferred",
                    api.name()
                ),
            );
        }
    }

    fn visit_member_expression(&mut self, member: &MemberExpression<'a>) {
        match self.api_member(member) {
            Some((api, property)) => self.api_member_read(api, property, member.span()),
            None => walk::walk_member_expression(self, member),
        }
    }

    /// Assignment targets (`=`, compound operators, `++`, destructuring and `for … of`
    /// targets) reach here; the read half of compound updates is added by their expressions.
    fn visit_simple_assignment_target(&mut self, target: &SimpleAssignmentTarget<'a>) {
        match self.state_target(target) {
            Some(property) => self.state_access(&[Kind::StateWrite], property, target.span()),
            None => walk::walk_simple_assignment_target(self, target),
        }
    }

    fn visit_assignment_expression(&mut self, assignment: &AssignmentExpression<'a>) {
        if assignment.operator != AssignmentOperator::Assign
            && let Some(target) = assignment.left.as_simple_assignment_target()
            && let Some(Property::Name(name)) = self.state_target(target)
        {
            // `$state.k += v` reads `k` before writing it.
            self.grant(Kind::StateRead, &name, target.span());
        }
        if assignment.operator == AssignmentOperator::Assign
            && let AssignmentTarget::ObjectAssignmentTarget(target) = &assignment.left
            && self.api(&assignment.right) == Some(Api::State)
        {
            self.destructured_assignment(target);
            self.visit_assignment_target(&assignment.left);
            return;
        }
        walk::walk_assignment_expression(self, assignment);
    }

    fn visit_update_expression(&mut self, update: &UpdateExpression<'a>) {
        if let Some(Property::Name(name)) = self.state_target(&update.argument) {
            self.grant(Kind::StateRead, &name, update.argument.span());
        }
        walk::walk_update_expression(self, update);
    }

    fn visit_unary_expression(&mut self, unary: &UnaryExpression<'a>) {
        // `delete $state?.k` deletes through a chain.
        let member = match &unary.argument {
            Expression::ChainExpression(chain) => chain.expression.as_member_expression(),
            argument => argument.as_member_expression(),
        };
        if unary.operator == UnaryOperator::Delete
            && let Some(member) = member
            && let Some((Api::State, property)) = self.api_member(member)
        {
            // Deleting a key is writing it; its old value is not read.
            self.state_access(&[Kind::StateWrite], property, member.span());
            return;
        }
        walk::walk_unary_expression(self, unary);
    }

    fn visit_binary_expression(&mut self, binary: &BinaryExpression<'a>) {
        if binary.operator == BinaryOperator::In && self.api(&binary.right) == Some(Api::State) {
            // `'k' in $state` asks the host whether `k` exists: a read of `k`.
            let property = literal_name(&binary.left).map_or(Property::Dynamic(&binary.left), Property::Name);
            self.state_access(&[Kind::StateRead], property, binary.span);
            return;
        }
        walk::walk_binary_expression(self, binary);
    }

    fn visit_call_expression(&mut self, call: &CallExpression<'a>) {
        if self.api_call(call) {
            self.visit_arguments(&call.arguments);
            return;
        }
        if self.is_object_keys(call) {
            self.visit_expression(&call.callee);
            for argument in &call.arguments {
                let is_state = argument.as_expression().and_then(|e| self.api(e)) == Some(Api::State);
                if !is_state {
                    self.visit_argument(argument);
                }
            }
            return;
        }
        walk::walk_call_expression(self, call);
    }

    fn visit_variable_declarator(&mut self, declarator: &VariableDeclarator<'a>) {
        if !self.destructure_state(&declarator.id, declarator.init.as_ref()) {
            walk::walk_variable_declarator(self, declarator);
        }
    }

    /// `function f({ a } = $state)`.
    fn visit_formal_parameter(&mut self, parameter: &FormalParameter<'a>) {
        if !self.destructure_state(&parameter.pattern, parameter.initializer.as_deref()) {
            walk::walk_formal_parameter(self, parameter);
        }
    }

    /// `[{ a } = $state] = list`: a nested pattern's default.
    fn visit_assignment_pattern(&mut self, pattern: &AssignmentPattern<'a>) {
        if !self.destructure_state(&pattern.left, Some(&pattern.right)) {
            walk::walk_assignment_pattern(self, pattern);
        }
    }

    /// `for (const k in $state)` enumerates keys like `Object.keys($state)`: no token.
    fn visit_for_in_statement(&mut self, statement: &ForInStatement<'a>) {
        if self.api(&statement.right) == Some(Api::State) {
            self.visit_for_statement_left(&statement.left);
            self.visit_statement(&statement.body);
            return;
        }
        walk::walk_for_in_statement(self, statement);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(source: &str) -> Inference {
        infer_capabilities(source).unwrap_or_else(|error| panic!("{source:?}: {error}"))
    }

    fn tokens(source: &str) -> Vec<String> {
        infer(source).capabilities.iter().map(ToString::to_string).collect()
    }

    /// (line, column) of each warning.
    fn warned_at(source: &str) -> Vec<(u32, u32)> {
        infer(source).warnings.iter().map(|warning| (warning.line, warning.column)).collect()
    }

    fn assert_clean(source: &str, expected: &[&str]) {
        let inference = infer(source);
        assert_eq!(inference.warnings, [], "{source:?}");
        let found: Vec<String> = inference.capabilities.iter().map(ToString::to_string).collect();
        assert_eq!(found, expected, "{source:?}");
    }

    #[test]
    fn reads_static_bracket_and_template_keys() {
        assert_clean(
            "$state.a; $state['b']; $state[\"c\"]; $state[`d`];",
            &["state:read:a", "state:read:b", "state:read:c", "state:read:d"],
        );
    }

    #[test]
    fn reads_anywhere_in_the_handler() {
        let source = "
            if ($state.cond) log($state.arg);
            const f = () => $state.arrow;
            function g() { return [$state.nested]; }
            class C { m() { return $state.method; } }
            return `${$state.template}` + ($state.paren);
        ";
        assert_clean(
            source,
            &[
                "state:read:arg",
                "state:read:arrow",
                "state:read:cond",
                "state:read:method",
                "state:read:nested",
                "state:read:paren",
                "state:read:template",
            ],
        );
    }

    #[test]
    fn optional_chaining_is_still_an_access() {
        assert_clean(
            "$state?.a; $emit?.('e'); await $ext?.w?.get(); $view?.update('v');",
            &["state:read:a", "events:emit:e", "view:update:v", "ext:w"],
        );
    }

    #[test]
    fn numeric_keys_are_their_decimal_string() {
        assert_clean("$state[0]; $state[42];", &["state:read:0", "state:read:42"]);
    }

    #[test]
    fn plain_assignment_writes_without_reading() {
        assert_clean("$state.a = 1; $state['b'] = $args.x;", &["state:write:a", "state:write:b"]);
    }

    #[test]
    fn assigning_into_a_value_reads_its_key() {
        assert_clean("$state.a.x = 1;", &["state:read:a"]);
    }

    #[test]
    fn destructuring_and_loop_targets_write() {
        assert_clean(
            "[$state.a] = xs; ({ k: $state.b } = o); for ($state.c of xs) {}",
            &["state:write:a", "state:write:b", "state:write:c"],
        );
    }

    #[test]
    fn compound_assignment_and_update_read_and_write() {
        assert_clean(
            "$state.a += 1; $state.b ??= 2; $state.c++; --$state['d'];",
            &[
                "state:read:a",
                "state:read:b",
                "state:read:c",
                "state:read:d",
                "state:write:a",
                "state:write:b",
                "state:write:c",
                "state:write:d",
            ],
        );
    }

    #[test]
    fn delete_writes_only() {
        assert_clean("delete $state.a; delete $state['b'];", &["state:write:a", "state:write:b"]);
        assert_clean("delete $state?.z;", &["state:write:z"]);
    }

    #[test]
    fn in_operator_reads() {
        assert_clean("if ('a' in $state) {}", &["state:read:a"]);
        assert_eq!(warned_at("if (k in $state) {}"), [(1, 5)]);
    }

    #[test]
    fn destructuring_reads_each_key() {
        assert_clean(
            "const { a, b: c, 'd-e': f, g = 1 } = $state;",
            &["state:read:a", "state:read:b", "state:read:d-e", "state:read:g"],
        );
        assert_clean("let h; ({ h } = $state);", &["state:read:h"]);
        assert_clean("function f({ i } = $state) {}", &["state:read:i"]);
    }

    #[test]
    fn destructuring_defaults_are_walked() {
        assert_clean("const { a = $state.b } = $state;", &["state:read:a", "state:read:b"]);
    }

    #[test]
    fn destructuring_computed_or_rest_warns() {
        let inference = infer("const { [k]: v, a, ...rest } = $state;");
        assert_eq!(inference.capabilities, [Capability::new(Kind::StateRead, "a")]);
        assert_eq!(warned_at("const { [k]: v, a, ...rest } = $state;"), [(1, 10), (1, 20)]);
    }

    #[test]
    fn object_keys_and_entries_need_nothing() {
        assert_clean("Object.keys($state); for (const [k, v] of Object.entries($state)) {}", &[]);
        assert_clean("for (const k in $state) {}", &[]);
    }

    #[test]
    fn a_local_object_is_not_the_real_one() {
        assert_eq!(warned_at("const Object = { keys() {} };\nObject.keys($state);"), [(2, 13)]);
    }

    #[test]
    fn emit_needs_its_event_name() {
        assert_clean(
            "$emit('changed', { n: $state.n }); $emit(`done`);",
            &["state:read:n", "events:emit:changed", "events:emit:done"],
        );
    }

    #[test]
    fn view_update_and_command_need_the_component_id() {
        assert_clean(
            "$view.update('label', {}); $view.command('scroll', 'list', {});",
            &["view:update:label", "view:update:list"],
        );
    }

    #[test]
    fn any_ext_member_access_needs_the_extension() {
        assert_clean(
            "await $ext.weather.get(1); $ext['maps'].route(); const c = $ext.clock;",
            &["ext:clock", "ext:maps", "ext:weather"],
        );
    }

    #[test]
    fn dynamic_accesses_warn_and_infer_nothing() {
        let source = "$state[k];\n$emit(name);\n$view.update(id);\n$ext[e].go();\n$view.command('t', id);";
        let inference = infer(source);
        assert_eq!(inference.capabilities, []);
        assert_eq!(warned_at(source), [(1, 1), (2, 7), (3, 14), (4, 1), (5, 20)]);
    }

    #[test]
    fn a_computed_key_is_walked_for_its_own_reads() {
        let inference = infer("$state[$state.which];");
        assert_eq!(inference.capabilities, [Capability::new(Kind::StateRead, "which")]);
        assert_eq!(inference.warnings.len(), 1);
    }

    #[test]
    fn spread_arguments_hide_positions() {
        assert_eq!(tokens("$emit(...args); $view.command(...a, 'label');"), Vec::<String>::new());
        assert_eq!(warned_at("$emit(...args); $view.command(...a, 'label');").len(), 2);
    }

    #[test]
    fn aliasing_an_api_object_warns() {
        let source = "const s = $state;\nhelper($ext);\n$emit.call(null, 'x');\n$state = {};\nconst u = $view.update;";
        let inference = infer(source);
        assert_eq!(inference.capabilities, []);
        assert_eq!(warned_at(source), [(1, 11), (2, 8), (3, 1), (4, 1), (5, 11)]);
        assert!(inference.warnings[0].message.contains("`$state`"));
    }

    #[test]
    fn unknown_or_computed_view_methods_warn() {
        let inference = infer("$view.remove('x');\n$view[m]($state.k);");
        assert_eq!(inference.capabilities, [Capability::new(Kind::StateRead, "k")]);
        assert_eq!(warned_at("$view.remove('x');\n$view[m]($state.k);"), [(1, 1), (2, 1)]);
        assert!(inference.warnings[0].message.contains("`$view.remove`"));
    }

    #[test]
    fn args_scope_and_log_need_nothing() {
        assert_clean("$log($args.x, $scope); const a = $args; $log.warn('w');", &[]);
    }

    #[test]
    fn a_literal_star_is_never_a_wildcard() {
        let source = "$state['*']; $state['*'] = 1; $emit('*'); $view.update('*'); $ext['*'].f();";
        let inference = infer(source);
        assert_eq!(inference.capabilities, []);
        assert_eq!(inference.warnings.len(), 5);
        assert!(inference.warnings.iter().all(|warning| warning.message.contains('*')));
        // A `*` inside a longer name is a literal character, not a wildcard.
        assert_clean("$state['user*'];", &["state:read:user*"]);
    }

    #[test]
    fn an_empty_name_is_not_a_token() {
        let inference = infer("$state['']; $emit('');");
        assert_eq!(inference.capabilities, []);
        assert_eq!(inference.warnings.len(), 2);
    }

    #[test]
    fn shadowed_api_names_are_not_the_api() {
        let source = "
            function f($emit) { $emit('inner'); }
            { const $state = {}; $state.a = $state.b; const s = $state; }
            [1].map(($ext) => $ext.local);
            try {} catch ($view) { $view.update('x'); }
            $state.outer;
        ";
        assert_clean(source, &["state:read:outer"]);
    }

    #[test]
    fn var_shadowing_is_hoisted() {
        assert_clean("function g() { $state.a; if (x) { var $state = {}; } }", &[]);
        assert_clean("function h() { $emit('x'); function $emit() {} }", &[]);
    }

    #[test]
    fn keys_with_colons_and_non_ascii_work() {
        assert_clean(
            "$state['a:b']; $state['café']; $state.ñ = 1; $ext['ns:tool'].x();",
            &["state:read:a:b", "state:read:café", "state:write:ñ", "ext:ns:tool"],
        );
    }

    #[test]
    fn capabilities_are_sorted_and_deduplicated() {
        assert_clean(
            "$ext.z.f(); $state.b; $emit('e'); $state.a; $state.b;",
            &["state:read:a", "state:read:b", "events:emit:e", "ext:z"],
        );
    }

    #[test]
    fn top_level_return_and_await_are_allowed() {
        assert_clean("const r = await $ext.api.get();\nreturn r;", &["ext:api"]);
    }

    #[test]
    fn warning_columns_are_the_handlers_own() {
        // Line 1 is where the wrapper's prefix sits; columns count characters, not bytes.
        assert_eq!(warned_at("$state[k]"), [(1, 1)]);
        assert_eq!(warned_at("const é = $state[k];"), [(1, 11)]);
        assert_eq!(warned_at("x;\r\n  const é = $emit;"), [(2, 13)]);
    }

    #[test]
    fn an_import_or_export_is_a_syntax_error_saying_a_handler_is_not_a_module() {
        for (source, at) in
            [("import { x } from './x';\nreturn x;", (1, 1)), ("const a = 1;\n  export default a;", (2, 3))]
        {
            let InferenceError::Syntax { line, column, message } = infer_capabilities(source).unwrap_err() else {
                panic!("a syntax error")
            };
            assert_eq!((line, column), at, "{message}");
            assert!(message.contains(NOT_A_MODULE), "{message}");
        }
        assert!(infer_capabilities("return await import('x');").is_ok(), "a dynamic import is an expression");
    }

    #[test]
    fn syntax_errors_carry_the_handlers_location() {
        let InferenceError::Syntax { line, column, message } = infer_capabilities("const x = ;").unwrap_err() else {
            panic!("a syntax error")
        };
        assert_eq!((line, column), (1, 11), "{message}");
        let InferenceError::Syntax { line, column, message } =
            infer_capabilities("$state.a;\n  let 1x = 2;").unwrap_err()
        else {
            panic!("a syntax error")
        };
        assert_eq!((line, column), (2, 8), "{message}");
        assert!(!message.is_empty());
    }

    #[test]
    fn an_unclosed_block_is_reported_at_the_end_of_the_handler() {
        let InferenceError::Syntax { line, column, .. } = infer_capabilities("if (x) {\n  y();").unwrap_err() else {
            panic!("a syntax error")
        };
        assert_eq!((line, column), (2, 7));
    }

    #[test]
    fn a_trailing_line_comment_does_not_swallow_the_wrapper() {
        assert_clean("$state.a; // done", &["state:read:a"]);
    }

    #[test]
    fn escaping_the_function_body_is_a_syntax_error() {
        let error = infer_capabilities("}); $state.x; (async function () {").unwrap_err();
        assert!(error.to_string().contains("closes its enclosing function"), "{error}");
    }

    #[test]
    fn serializes_capabilities_as_tokens() {
        let value = serde_json::to_value(infer("$state.a; $emit(e);")).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "capabilities": ["state:read:a"],
                "warnings": [{
                    "message": value["warnings"][0]["message"],
                    "line": 1,
                    "column": 17,
                }],
            })
        );
    }
}

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn deeply_nested_handlers_do_not_overflow_the_callers_stack() {
        for source in [
            "(".repeat(50_000) + "1" + &")".repeat(50_000),
            "{".repeat(200_000) + &"}".repeat(200_000),
            "return 1".to_owned() + &"+1".repeat(200_000),
        ] {
            // The outcome may be a result or a syntax error; the point is that the process survives.
            let _ = infer_capabilities(&source);
        }
    }

    #[test]
    fn oversized_sources_are_refused() {
        let source = " ".repeat(MAX_SOURCE_BYTES + 1);
        assert_eq!(infer_capabilities(&source), Err(InferenceError::TooLarge { bytes: MAX_SOURCE_BYTES + 1 }));
    }
}
