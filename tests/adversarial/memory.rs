//! Real out-of-memory is `MEMORY_LIMIT`, always: the store's limit is the one that binds, and a
//! refused growth ends the execution there, whatever the handler catches.

use super::*;

fn with_memory(source: &str, bytes: u64) -> ExecutionRequest {
    // The slowest grower needs ~6 s of a loaded debug build to fill 16 MiB: the time limit
    // stays far from the memory limit even when the machine is busier still.
    ExecutionRequest { memory_limit: Some(bytes), timeout: Duration::from_secs(60), ..request(source, &[]) }
}

fn assert_memory_limit(result: &ExecutionResult, what: &str) {
    let error = result.error.as_ref().unwrap_or_else(|| panic!("{what}: expected MEMORY_LIMIT, got {result:?}"));
    assert_eq!(error.code, ErrorCode::MemoryLimit, "{what}: {error:?}");
    assert_eq!(result.status, Status::Error);
}

// (`s += s` alone is no grower: quickjs-ng concatenates long strings as ropes, and reaches its
// string length limit, a plain `InternalError`, without allocating.)
const GROWERS: [&str; 5] = [
    "const all = []; for (;;) all.push('y'.repeat(1 << 20));",
    "let s = ''; for (let i = 0; ; i++) s += String(i);",
    "const all = []; for (;;) all.push({ n: all.length, list: [1, 2, 3] });",
    "const all = []; for (;;) all.push('x'.repeat(1 << 16) + all.length);",
    "const all = []; for (;;) all.push(new Float64Array(1 << 14));",
];

#[test]
fn growing_until_the_limit_is_memory_limit() {
    for grow in GROWERS {
        assert_memory_limit(&attempt(with_memory(grow, 16 << 20)), grow);
    }
    // The default limit (64 MiB) too.
    assert_memory_limit(&attempt(request(GROWERS[0], &[])), "default limit");
}

#[test]
fn a_handler_cannot_catch_out_of_memory_and_carry_on() {
    for grow in GROWERS {
        for catching in [
            format!("try {{ {grow} }} catch (e) {{ return 'caught ' + String(e); }}"),
            format!("try {{ {grow} }} catch (e) {{}} return 'carried on';"),
            format!("try {{ {grow} }} finally {{ return 'finally'; }}"),
            format!("await new Promise((resolve) => {{ try {{ {grow} }} catch (e) {{ resolve(); }} }}); return 1;"),
        ] {
            assert_memory_limit(&attempt(with_memory(&catching, 16 << 20)), &catching);
        }
    }
}

#[test]
fn one_huge_allocation_is_memory_limit_too() {
    for huge in [
        "const b = new ArrayBuffer(64 << 20); return b.byteLength;",
        "try { return new Array(1 << 25).fill(0).length; } catch (e) { return String(e); }",
        "try { return 'x'.repeat(40 << 20).length; } catch (e) { return String(e); }",
    ] {
        assert_memory_limit(&attempt(with_memory(huge, 16 << 20)), huge);
    }
}
