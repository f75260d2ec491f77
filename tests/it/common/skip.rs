//! Tests that need an external tool (a browser, the Python SDK, the Node tools, PostgreSQL) and do not
//! find it pass without running. libtest shows a passing test's output only with `--nocapture`, so such
//! a skip would be invisible: [`skip`] records it, and when the test binary exits (after libtest's
//! `test result:` line) one note on stderr counts the skipped tests and names each one's reason.
//! `DEVGATE_REQUIRE_<TOOL>=1` turns the skip into a failure instead; `.ci/run` sets every switch.
//!
//! Shared by the integration tests (`tests/it/common`) and the library's own tests (`src/vault`), so the
//! one rule holds everywhere. The note is written with `write(2)` from an `atexit` handler: it bypasses
//! libtest's output capture, and runs whether libtest returns or exits with a failure.
#![allow(dead_code)]

use std::sync::{Mutex, Once};

/// The tools a test may need, with the variable that makes a missing one a failure.
pub const BROWSER: &str = "DEVGATE_REQUIRE_BROWSER";
pub const PYTHON_SDK: &str = "DEVGATE_REQUIRE_PYTHON_SDK";
pub const NODE_TOOLS: &str = "DEVGATE_REQUIRE_NODE_TOOLS";
pub const POSTGRES: &str = "DEVGATE_REQUIRE_POSTGRES";
/// The older switch for both client tools (the Python SDK and the Node tools); still honoured.
const CLIENTS: &str = "DEVGATE_REQUIRE_CLIENTS";

/// `(test, reason)` of every skip in this process, in order.
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();

/// Whether `switch` (one of the constants above) demands the tool: set, and neither empty nor `0`.
pub fn required(switch: &str) -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
    set(switch) || ((switch == PYTHON_SDK || switch == NODE_TOOLS) && set(CLIENTS))
}

/// The calling test cannot run here because of `reason` (what is missing and how to get it). Panics
/// when `switch` demands the tool; otherwise records the skip for the note at exit, and the caller
/// returns.
pub fn skip(switch: &str, reason: &str) {
    // libtest names each test's thread after the test.
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or("a test");
    skip_test(test, switch, reason);
}

/// [`skip`] for a test named explicitly.
pub fn skip_test(test: &str, switch: &str, reason: &str) {
    if required(switch) {
        panic!("{switch} is set, so {test} may not skip: {reason}");
    }
    let test = test.to_string();
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    skipped.push((test, format!("{reason} (set {switch}=1 to fail instead)")));
    drop(skipped);
    AT_EXIT.call_once(register_note);
}

/// The note printed at exit, or `None` when nothing was skipped.
pub fn note() -> Option<String> {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        return None;
    }
    let count = skipped.len();
    let mut text = format!(
        "SKIPPED: {count} test{} of this binary passed without running:\n",
        if count == 1 { "" } else { "s" }
    );
    for (test, reason) in skipped.iter() {
        text.push_str(&format!("  {test}: {reason}\n"));
    }
    Some(text)
}

#[cfg(unix)]
fn register_note() {
    unsafe extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
        fn write(fd: std::ffi::c_int, buf: *const std::ffi::c_void, count: usize) -> isize;
    }
    extern "C" fn print_note() {
        if let Some(text) = note() {
            let mut rest = text.as_bytes();
            while !rest.is_empty() {
                // SAFETY: fd 2 and a live buffer of `rest.len()` bytes.
                let n = unsafe { write(2, rest.as_ptr().cast(), rest.len()) };
                if n <= 0 {
                    break;
                }
                rest = &rest[n as usize..];
            }
        }
    }
    // SAFETY: registers a plain function; it only reads a static and writes to fd 2.
    unsafe {
        atexit(print_note);
    }
}

#[cfg(not(unix))]
fn register_note() {}
