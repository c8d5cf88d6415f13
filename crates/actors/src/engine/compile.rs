//! Compiling handlers: source (or TypeScript, its types stripped first) to bytecode inside a
//! fresh sandbox instance, through the compile cache for executions, or ahead of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_abi::{Code, CompileInput, CompileOutput, ErrorCode};
use nexus_host_fns::inference::{NO_DECORATORS, NOT_A_MODULE};

use super::errors::{self, Evidence};
use super::instance::{EntryPoint, GuestInstance};
use super::step::Loaded;
use super::typescript::{self, Authored};
use super::{Engine, ExecutionError, Handler, Language};

/// Time allowed to compile a handler ahead of its executions.
const PRECOMPILE_BUDGET: Duration = Duration::from_secs(10);

impl Engine {
    /// The code to run for `handler`, and the source its errors point into. Source goes
    /// through the compile cache (TypeScript keyed by its own text, before its types are
    /// stripped): on a miss it is compiled in this same fresh instance (compiling runs no
    /// handler code), and the time spent (stripping types included) comes out of the
    /// execution's budget.
    pub(super) fn load(
        &self,
        handler: Handler,
        instance: &mut GuestInstance,
        time_left: &mut Duration,
    ) -> Result<(Code, Option<Authored>, Loaded), (ExecutionError, u64)> {
        let (language, source) = match handler {
            Handler::Bytecode(bytes) => {
                let (bytecode, authored) = typescript::unbundle(bytes).map_err(|error| (error, 0))?;
                return Ok((Code::Bytecode(bytecode), authored, Loaded::default()));
            }
            Handler::Source(source) => (Language::JavaScript, source),
            Handler::TypeScript(source) => (Language::TypeScript, source),
        };
        // Without a cache, source is compiled here all the same: compiling checks it is a body.
        let key = self.cache.enabled().then(|| self.cache.key(language, &source));
        let authored = match language {
            Language::JavaScript => Authored::JavaScript,
            Language::TypeScript => Authored::TypeScript,
        };
        if let Some(bytecode) = key.as_ref().and_then(|key| self.cache.get(key)) {
            return Ok((
                Code::Bytecode(bytecode.to_vec()),
                Some(authored(source)),
                Loaded { cache_hit: true, compile_time_us: 0 },
            ));
        }
        let compiling = Instant::now();
        let compiled = match language {
            Language::JavaScript => self.compile_in(instance, &source, None, *time_left),
            Language::TypeScript => typescript::strip(&source)
                .and_then(|stripped| self.compile_in(instance, &stripped.code, Some(&stripped.map), *time_left)),
        };
        *time_left = time_left.saturating_sub(compiling.elapsed());
        let compile_time_us = compiling.elapsed().as_micros() as u64;
        let bytecode = compiled.map_err(|error| (error, compile_time_us))?;
        if let Some(key) = key {
            self.cache.insert(key, Arc::new(bytecode.clone()));
        }
        Ok((Code::Bytecode(bytecode), Some(authored(source)), Loaded { cache_hit: false, compile_time_us }))
    }

    /// Compiles handler source to bytecode inside a fresh sandbox instance.
    pub fn precompile(&self, source: &str) -> Result<Vec<u8>, ExecutionError> {
        let mut instance =
            self.blank_instance().map_err(|e| ExecutionError::new(ErrorCode::Internal, format!("{e:#}")))?;
        self.compile_in(&mut instance, source, None, PRECOMPILE_BUDGET)
    }

    /// Compiles a TypeScript handler to bytecode inside a fresh sandbox instance, its source
    /// map kept with it: errors of executions of it point into the TypeScript.
    pub fn precompile_typescript(&self, source: &str) -> Result<Vec<u8>, ExecutionError> {
        let started = Instant::now();
        let stripped = typescript::strip(source)?;
        let mut instance =
            self.blank_instance().map_err(|e| ExecutionError::new(ErrorCode::Internal, format!("{e:#}")))?;
        let budget = PRECOMPILE_BUDGET.saturating_sub(started.elapsed());
        let bytecode = self.compile_in(&mut instance, &stripped.code, Some(&stripped.map), budget)?;
        Ok(typescript::bundle(&stripped.map, &bytecode))
    }

    /// Precompiles source in `language` ([`Engine::precompile`], [`Engine::precompile_typescript`]).
    pub fn precompile_as(&self, source: &str, language: Language) -> Result<Vec<u8>, ExecutionError> {
        match language {
            Language::JavaScript => self.precompile(source),
            Language::TypeScript => self.precompile_typescript(source),
        }
    }

    /// Compiles JavaScript `source`; with the `map` of the TypeScript it was stripped from, its
    /// errors are reported in the TypeScript's coordinates.
    pub(super) fn compile_in(
        &self,
        instance: &mut GuestInstance,
        source: &str,
        map: Option<&nexus_typescript::SourceMap>,
        budget: Duration,
    ) -> Result<Vec<u8>, ExecutionError> {
        let watch = self.watch(instance, budget);
        let output = instance.call::<_, CompileOutput>(EntryPoint::Compile, &CompileInput { source: source.into() });
        drop(watch);
        let authored = |error| match map {
            Some(map) => typescript::in_typescript(error, map, Some(source)),
            None => error,
        };
        match output {
            Ok(CompileOutput::Bytecode(bytecode)) => errors::check_body(source).map(|()| bytecode).map_err(authored),
            Ok(CompileOutput::Threw(error)) => {
                // QuickJS's message for an `import` or `export` statement or a decorator
                // (`Unexpected token '{'`, `unexpected token in expression: '@'`) does not say
                // why it is one; the body check's does.
                let not_handler_code = errors::check_body(source)
                    .err()
                    .filter(|e| e.message.contains(NOT_A_MODULE) || e.message.contains(NO_DECORATORS));
                let error =
                    not_handler_code.unwrap_or_else(|| errors::from_guest(error, Some(source), Evidence::default()));
                Err(authored(error))
            }
            Err(trap) => {
                let data = instance.store.data();
                Err(errors::from_trap(&trap, &data.limits, data.host.guest_output()))
            }
        }
    }
}
