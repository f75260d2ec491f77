//! The command line: `check` lists every problem, `tools` shows what a config offers (scopes, toolsets,
//! read-only, env overrides), the store commands (`status`, `keys`, `audit`) read without secrets and
//! not without a config, and each `sandbox` starts a working gateway in front of the sim with its own
//! state.

mod check;
mod reading;
mod sandboxes;
mod terminal;

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use devgate::sim::Sim;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
